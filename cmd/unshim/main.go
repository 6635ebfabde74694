// Command unshim takes Kubernetes nodes off Docker Engine and onto containerd.
// Installed as kubectl-unshim it also runs as a kubectl plugin (`kubectl unshim`).
package main

import "github.com/unshim/unshim/cmd/unshim/app"

func main() { app.Main() }
