# unshim: move Windows node 'win-1' from Docker to containerd.
# kubelet 1.26.15, containerd 2.2.7, sandbox image 'registry.k8s.io/pause:3.9'.
# Run in an elevated PowerShell on the node, after unshim has drained it.
# note: sandbox image: registry.k8s.io/pause:3.9, from the kubelet's --pod-infra-container-image
# note: containerd's RELEASES.md lists containerd 2.x for Kubernetes 1.30 and later only; kubelet 1.26.15 is older
# note: no way back to Docker: kubelet 1.26.15 has no dockershim, and cri-dockerd is not planned on Windows
# note: drop --container-runtime=remote: replaced: the runtime is set again for containerd
# note: drop --container-runtime-endpoint=npipe:////./pipe/cri-dockerd: replaced: containerd's named pipe
# note: add --container-runtime=remote
# note: add --container-runtime-endpoint=npipe:////./pipe/containerd-containerd

$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'

# ---- step 1/9: drain ----
# unshim cordons the node and evicts its pods from the API side before this script runs.
# Nothing to do on the node.

# ---- step 2/9: stop-kubelet ----
# Stop the kubelet so it does not restart pods while the runtime changes.
Stop-Service -Name 'kubelet'

# ---- step 3/9: stop-docker ----
# Kill Docker's containers, stop Docker and keep it from starting at boot.
# Docker stays installed (with its images) until it is purged separately.
$docker = Get-Service -Name 'docker' -ErrorAction SilentlyContinue
if ($docker) {
    if ($docker.Status -eq 'Running' -and (Get-Command -Name 'docker.exe' -ErrorAction SilentlyContinue)) {
        $ids = @(docker.exe ps --quiet)
        # A container that exits meanwhile makes docker kill fail; stopping the service stops the rest.
        if ($ids.Count -gt 0) { docker.exe kill $ids | Out-Null }
    }
    Stop-Service -Name 'docker'
    Set-Service -Name 'docker' -StartupType Disabled
}

# ---- step 4/9: install-containerd ----
# Download containerd 2.2.7 and install its binaries in $Env:ProgramFiles\containerd.
# The archive source may be a local or UNC path for an air-gapped node (unshim's archive URL setting).
$containerdDir = Join-Path $Env:ProgramFiles 'containerd'
$archive = Join-Path $Env:TEMP 'containerd-2.2.7-windows-amd64.tar.gz'
curl.exe --fail --silent --show-error --location --retry 3 --output $archive 'https://github.com/containerd/containerd/releases/download/v2.2.7/containerd-2.2.7-windows-amd64.tar.gz'
if ($LASTEXITCODE -ne 0) { throw "download of containerd failed (curl.exe exit $LASTEXITCODE)" }
$unpack = Join-Path $Env:TEMP 'unshim-containerd'
if (Test-Path -LiteralPath $unpack) { Remove-Item -LiteralPath $unpack -Recurse -Force }
[System.IO.Directory]::CreateDirectory($unpack) | Out-Null
tar.exe -xzf $archive -C $unpack
if ($LASTEXITCODE -ne 0) { throw "tar.exe could not unpack $archive (exit $LASTEXITCODE)" }
# A containerd service left by an earlier run holds the binaries open.
if (Get-Service -Name 'containerd' -ErrorAction SilentlyContinue) { Stop-Service -Name 'containerd' }
[System.IO.Directory]::CreateDirectory($containerdDir) | Out-Null
Copy-Item -Path (Join-Path $unpack 'bin\*') -Destination $containerdDir -Force
$machinePath = [Environment]::GetEnvironmentVariable('Path', 'Machine')
if (($machinePath -split ';') -notcontains $containerdDir) {
    [Environment]::SetEnvironmentVariable('Path', $machinePath + ';' + $containerdDir, 'Machine')
}

# ---- step 5/9: configure-containerd ----
# Write containerd's config.toml: sandbox image 'registry.k8s.io/pause:3.9', CNI plugins in 'c:/opt/cni/bin',
# CNI config in 'c:/etc/cni/net.d'. The CNI directories are created if missing; the CNI plugins themselves
# stay where the network add-on installed them.
$containerdDir = Join-Path $Env:ProgramFiles 'containerd'
foreach ($dir in @('c:/opt/cni/bin', 'c:/etc/cni/net.d')) { [System.IO.Directory]::CreateDirectory($dir) | Out-Null }
$config = Join-Path $containerdDir 'config.toml'
$backup = $config + '.pre-unshim'
if ((Test-Path -LiteralPath $config) -and -not (Test-Path -LiteralPath $backup)) { Copy-Item -LiteralPath $config -Destination $backup }
$toml = @'
# containerd 2.2 config for a Windows Kubernetes node, written by unshim.
# Settings not listed here keep containerd's Windows defaults (containerd.exe config default).
version = 3

[plugins]
  [plugins.'io.containerd.cri.v1.images']
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = 'registry.k8s.io/pause:3.9'

  [plugins.'io.containerd.cri.v1.runtime']
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = ['c:/opt/cni/bin']
      conf_dir = 'c:/etc/cni/net.d'
'@
# UTF-8 without a byte-order mark: containerd's TOML parser does not skip one.
[System.IO.File]::WriteAllText($config, $toml + "`n", (New-Object System.Text.UTF8Encoding $false))

# ---- step 6/9: start-containerd ----
# Register containerd as a Windows service (once), start it at boot and now, and wait for its pipe.
$containerdDir = Join-Path $Env:ProgramFiles 'containerd'
if (-not (Get-Service -Name 'containerd' -ErrorAction SilentlyContinue)) {
    & (Join-Path $containerdDir 'containerd.exe') --register-service
    if ($LASTEXITCODE -ne 0) { throw "containerd.exe --register-service failed (exit $LASTEXITCODE)" }
}
Set-Service -Name 'containerd' -StartupType Automatic
Start-Service -Name 'containerd'
$deadline = (Get-Date).AddSeconds(60)
while (-not (Test-Path -LiteralPath '\\.\pipe\containerd-containerd')) {
    if ((Get-Date) -gt $deadline) { throw 'containerd did not open \\.\pipe\containerd-containerd within 60s' }
    Start-Sleep -Seconds 1
}

# ---- step 7/9: kubelet-flags ----
# Back up C:\var\lib\kubelet\kubeadm-flags.env (once) and point the kubelet at npipe:////./pipe/containerd-containerd.
# The new flags were worked out from the node's current flags for kubelet 1.26.15.
$flagsFile = 'C:\var\lib\kubelet\kubeadm-flags.env'
$backup = 'C:\var\lib\kubelet\kubeadm-flags.env.pre-unshim'
if ((Test-Path -LiteralPath $flagsFile) -and -not (Test-Path -LiteralPath $backup)) { Copy-Item -LiteralPath $flagsFile -Destination $backup }
$line = 'KUBELET_KUBEADM_ARGS="--pod-infra-container-image=registry.k8s.io/pause:3.9 --hostname-override=win-1 --container-runtime=remote --container-runtime-endpoint=npipe:////./pipe/containerd-containerd"'
[System.IO.File]::WriteAllText($flagsFile, $line + "`r`n", (New-Object System.Text.UTF8Encoding $false))

# ---- step 8/9: start-kubelet ----
# Start the kubelet on containerd.
Start-Service -Name 'kubelet'

# ---- step 9/9: cri-socket ----
# unshim sets the Node annotation kubeadm.alpha.kubernetes.io/cri-socket to npipe:////./pipe/containerd-containerd
# from the API side, waits for the node to be Ready on containerd://, then uncordons it.
# Nothing to do on the node.
