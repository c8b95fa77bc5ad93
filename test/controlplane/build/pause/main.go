// Command pause is the first process of every pod on the local node: it holds the pod's
// namespaces open, reaps the zombies it inherits, and exits 0 on SIGINT or SIGTERM. It does what
// Kubernetes' own pause (build/pause/linux/pause.c) does, written here in Go so that the Go the
// control plane is built with also builds it, as a static binary.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for received := range signals {
		if received != syscall.SIGCHLD {
			os.Exit(0)
		}
		reapChildren()
	}
}

// reapChildren waits for every child that has exited, without blocking.
func reapChildren() {
	for {
		pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
