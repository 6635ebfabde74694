package winplan

import (
	"fmt"
	"sort"
	"strings"
)

// steps returns the script's steps in order. Each step declares the
// variables it uses, so it can also be run on its own.
func steps(s *Script, sha256 string) ([]Step, error) {
	cfg, err := configStep(s)
	if err != nil {
		return nil, err
	}
	return []Step{
		{
			Name: "drain",
			Description: "unshim cordons the node and evicts its pods from the API side before this script runs.\n" +
				"Nothing to do on the node.",
		},
		{
			Name:        "stop-kubelet",
			Description: "Stop the kubelet so it does not restart pods while the runtime changes.",
			Lines:       []string{"Stop-Service -Name 'kubelet'"},
		},
		stopDockerStep(),
		installStep(s, sha256),
		cfg,
		startContainerdStep(),
		kubeletFlagsStep(s),
		{
			Name:        "start-kubelet",
			Description: "Start the kubelet on containerd.",
			Lines:       []string{"Start-Service -Name 'kubelet'"},
		},
		{
			Name: "cri-socket",
			Description: "unshim sets the Node annotation kubeadm.alpha.kubernetes.io/cri-socket to " + Endpoint + "\n" +
				"from the API side, waits for the node to be Ready on containerd://, then uncordons it.\n" +
				"Nothing to do on the node.",
		},
	}, nil
}

func stopDockerStep() Step {
	return Step{
		Name: "stop-docker",
		Description: "Kill Docker's containers, stop Docker and keep it from starting at boot.\n" +
			"Docker stays installed (with its images) until it is purged separately.",
		Lines: []string{
			"$docker = Get-Service -Name 'docker' -ErrorAction SilentlyContinue",
			"if ($docker) {",
			"    if ($docker.Status -eq 'Running' -and (Get-Command -Name 'docker.exe' -ErrorAction SilentlyContinue)) {",
			"        $ids = @(docker.exe ps --quiet)",
			"        # A container that exits meanwhile makes docker kill fail; stopping the service stops the rest.",
			"        if ($ids.Count -gt 0) { docker.exe kill $ids | Out-Null }",
			"    }",
			"    Stop-Service -Name 'docker'",
			"    Set-Service -Name 'docker' -StartupType Disabled",
			"}",
		},
	}
}

func archiveName(s *Script) string {
	return "containerd-" + s.Containerd.String() + "-windows-amd64.tar.gz"
}

func isURL(s string) bool {
	l := strings.ToLower(s)
	return strings.HasPrefix(l, "https://") || strings.HasPrefix(l, "http://")
}

func installStep(s *Script, sha256 string) Step {
	lines := []string{
		"$containerdDir = Join-Path $Env:ProgramFiles 'containerd'",
		"$archive = Join-Path $Env:TEMP " + psQuote(archiveName(s)),
	}
	desc := "Download containerd " + s.Containerd.String() + " and install its binaries in $Env:ProgramFiles\\containerd.\n" +
		"The archive source may be a local or UNC path for an air-gapped node (unshim's archive URL setting)."
	if isURL(s.ArchiveURL) {
		lines = append(lines,
			"curl.exe --fail --silent --show-error --location --retry 3 --output $archive "+psQuote(s.ArchiveURL),
			`if ($LASTEXITCODE -ne 0) { throw "download of containerd failed (curl.exe exit $LASTEXITCODE)" }`,
		)
	} else {
		lines = append(lines, "Copy-Item -LiteralPath "+psQuote(s.ArchiveURL)+" -Destination $archive -Force")
	}
	if sha256 != "" {
		lines = append(lines,
			"if ((Get-FileHash -LiteralPath $archive -Algorithm SHA256).Hash -ne "+psQuote(strings.ToUpper(sha256))+") {",
			`    throw "$archive does not have the expected SHA-256"`,
			"}",
		)
	}
	lines = append(lines,
		"$unpack = Join-Path $Env:TEMP 'unshim-containerd'",
		"if (Test-Path -LiteralPath $unpack) { Remove-Item -LiteralPath $unpack -Recurse -Force }",
		"[System.IO.Directory]::CreateDirectory($unpack) | Out-Null",
		"tar.exe -xzf $archive -C $unpack",
		`if ($LASTEXITCODE -ne 0) { throw "tar.exe could not unpack $archive (exit $LASTEXITCODE)" }`,
		"# A containerd service left by an earlier run holds the binaries open.",
		"if (Get-Service -Name 'containerd' -ErrorAction SilentlyContinue) { Stop-Service -Name 'containerd' }",
		"[System.IO.Directory]::CreateDirectory($containerdDir) | Out-Null",
		"Copy-Item -Path (Join-Path $unpack 'bin\\*') -Destination $containerdDir -Force",
		"$machinePath = [Environment]::GetEnvironmentVariable('Path', 'Machine')",
		"if (($machinePath -split ';') -notcontains $containerdDir) {",
		"    [Environment]::SetEnvironmentVariable('Path', $machinePath + ';' + $containerdDir, 'Machine')",
		"}",
	)
	return Step{Name: "install-containerd", Description: desc, Lines: lines}
}

func configStep(s *Script) (Step, error) {
	here, err := hereString(string(s.ContainerdConfig))
	if err != nil {
		return Step{}, fmt.Errorf("containerd config: %w", err)
	}
	lines := []string{
		"$containerdDir = Join-Path $Env:ProgramFiles 'containerd'",
		"foreach ($dir in " + psList([]string{s.CNIBinDir, s.CNIConfDir}) + ") { [System.IO.Directory]::CreateDirectory($dir) | Out-Null }",
		"$config = Join-Path $containerdDir 'config.toml'",
		"$backup = $config + " + psQuote(BackupSuffix),
		"if ((Test-Path -LiteralPath $config) -and -not (Test-Path -LiteralPath $backup)) { Copy-Item -LiteralPath $config -Destination $backup }",
		"$toml = " + here[0],
	}
	lines = append(lines, here[1:]...)
	lines = append(lines,
		"# UTF-8 without a byte-order mark: containerd's TOML parser does not skip one.",
		"[System.IO.File]::WriteAllText($config, $toml + \"`n\", (New-Object System.Text.UTF8Encoding $false))",
	)
	return Step{
		Name: "configure-containerd",
		Description: "Write containerd's config.toml: sandbox image " + psQuote(s.SandboxImage) + ", CNI plugins in " + psQuote(s.CNIBinDir) + ",\n" +
			"CNI config in " + psQuote(s.CNIConfDir) + ". The CNI directories are created if missing; the CNI plugins themselves\n" +
			"stay where the network add-on installed them.",
		Lines: lines,
	}, nil
}

func startContainerdStep() Step {
	return Step{
		Name:        "start-containerd",
		Description: "Register containerd as a Windows service (once), start it at boot and now, and wait for its pipe.",
		Lines: []string{
			"$containerdDir = Join-Path $Env:ProgramFiles 'containerd'",
			"if (-not (Get-Service -Name 'containerd' -ErrorAction SilentlyContinue)) {",
			"    & (Join-Path $containerdDir 'containerd.exe') --register-service",
			`    if ($LASTEXITCODE -ne 0) { throw "containerd.exe --register-service failed (exit $LASTEXITCODE)" }`,
			"}",
			"Set-Service -Name 'containerd' -StartupType Automatic",
			"Start-Service -Name 'containerd'",
			"$deadline = (Get-Date).AddSeconds(60)",
			"while (-not (Test-Path -LiteralPath " + psQuote(Pipe) + ")) {",
			"    if ((Get-Date) -gt $deadline) { throw " + psQuote("containerd did not open "+Pipe+" within 60s") + " }",
			"    Start-Sleep -Seconds 1",
			"}",
		},
	}
}

func kubeletFlagsStep(s *Script) Step {
	lines := []string{
		"$flagsFile = " + psQuote(FlagsFile),
		"$backup = " + psQuote(FlagsBackup),
		"if ((Test-Path -LiteralPath $flagsFile) -and -not (Test-Path -LiteralPath $backup)) { Copy-Item -LiteralPath $flagsFile -Destination $backup }",
	}
	desc := "Back up " + FlagsFile + " (once) and point the kubelet at " + Endpoint + ".\n"
	if s.KubeletArgs != nil {
		desc += "The new flags were worked out from the node's current flags for kubelet " + s.Kubelet.String() + "."
		lines = append(lines, "$line = "+psQuote(`KUBELET_KUBEADM_ARGS="`+strings.Join(s.KubeletArgs, " ")+`"`))
	} else {
		desc += "The current flags were not known to unshim: the file is edited here. Flags must be written\n" +
			"--name=value, as kubeadm writes them."
		drop := dropFlags(s.Kubelet)
		names := make([]string, 0, len(drop))
		for n := range drop {
			names = append(names, n)
		}
		sort.Strings(names)
		lines = append(lines,
			"if (-not (Test-Path -LiteralPath $flagsFile)) { throw \"$flagsFile is missing: unshim cannot tell how this kubelet is configured\" }",
			"$drop = "+psList(names),
			"$add = "+psList(runtimeFlags(s.Kubelet)),
			"$text = ([string](Get-Content -LiteralPath $flagsFile -Raw)).Trim()",
			`if ($text -notmatch '^KUBELET_KUBEADM_ARGS="([^"]*)"$') { throw "$flagsFile is not one KUBELET_KUBEADM_ARGS=""..."" line" }`,
			"$kept = @(-split $Matches[1] | Where-Object { $_ -ne '' -and $drop -notcontains (($_ -replace '^-+', '') -replace '=.*$', '') })",
		)
		if _, dropped := drop["pod-infra-container-image"]; !dropped {
			lines = append(lines,
				"$kept = @($kept | ForEach-Object { if ($_ -like '--pod-infra-container-image=*') { "+psQuote("--pod-infra-container-image="+s.SandboxImage)+" } else { $_ } })",
			)
		}
		lines = append(lines, `$line = 'KUBELET_KUBEADM_ARGS="' + (($kept + $add) -join ' ') + '"'`)
	}
	lines = append(lines, "[System.IO.File]::WriteAllText($flagsFile, $line + \"`r`n\", (New-Object System.Text.UTF8Encoding $false))")
	return Step{Name: "kubelet-flags", Description: desc, Lines: lines}
}
