// Command crane is go-containerregistry's cmd/crane main (a copy of upstream's), built from the
// module proxy so that images are handled without a container daemon (`crane push
// target/image/gatehouse.tar REGISTRY/gatehouse:VERSION`; hack/image assembles the image itself).
package main

import (
	"context"
	"os"
	"os/signal"

	"github.com/google/go-containerregistry/cmd/crane/cmd"
	"github.com/google/go-containerregistry/pkg/logs"
)

func init() {
	logs.Warn.SetOutput(os.Stderr)
	logs.Progress.SetOutput(os.Stderr)
}

func main() {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()
	if err := cmd.Root.ExecuteContext(ctx); err != nil {
		cancel()
		os.Exit(1)
	}
}
