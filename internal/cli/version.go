package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
)

// version is set at build time with -ldflags "-X .../internal/cli.version=v0.1.0".
var version = ""

func osArgs0() string {
	if len(os.Args) == 0 {
		return ""
	}
	return os.Args[0]
}

// NewCmdVersion prints archfit's version.
func NewCmdVersion(streams genericiooptions.IOStreams) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print archfit's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintf(streams.Out, "archfit %s\n", versionString())
			return err
		},
	}
}
