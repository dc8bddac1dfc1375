// Command vault is an unmodified HashiCorp Vault server and CLI built from the
// Go module proxy, so tests can run a real Vault dev server on loopback.
package main

import (
	"os"

	"github.com/hashicorp/vault/command"
)

func main() {
	// command.Run parses the subcommand and flags and returns the exit status.
	os.Exit(command.Run(os.Args[1:]))
}
