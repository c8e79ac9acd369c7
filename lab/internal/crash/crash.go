// Package crash lets tests kill or interrupt labctl at a named point of a
// command, exactly: LABCTL_FAULT_AT=<point> with LABCTL_FAULT_SIGNAL=KILL
// (the default: a kill -9 half-way) or INT (Ctrl-C, after which the command
// must roll back or stop cleanly).
package crash

import (
	"context"
	"os"
	"syscall"
)

// Point crashes the process here if LABCTL_FAULT_AT names point.
func Point(ctx context.Context, point string) {
	if os.Getenv("LABCTL_FAULT_AT") != point {
		return
	}
	sig := syscall.SIGKILL
	if os.Getenv("LABCTL_FAULT_SIGNAL") == "INT" {
		sig = syscall.SIGINT
	}
	_ = syscall.Kill(os.Getpid(), sig)
	if done := ctx.Done(); done != nil {
		<-done // SIGINT cancels ctx; SIGKILL never returns
	}
}
