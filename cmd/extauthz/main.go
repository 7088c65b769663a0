// Command extauthz is an authorization gateway for MCP servers: Envoy (or
// an Istio sidecar) asks it about every request over the ext_authz gRPC
// API, and it answers from OAuth 2.1 access tokens.
//
// Subcommands: serve, check-config, check, dev, version. All wiring of the
// packages under pkg/ lives here.
//
// The package is over ~1,500 lines because all wiring lives here (CONVENTIONS.md), one file
// per part: the app, reload, issuers, the cache, login, admin and the subcommands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `extauthz — an ext_authz authorization gateway for MCP servers

Usage:
  extauthz serve --config FILE        run the gateway (env EXTAUTHZ_CONFIG)
  extauthz serve                      run it configured by EXTAUTHZ_* environment variables alone
  extauthz check-config [FILE]        validate a config file (no FILE: the environment's);
                                      exit 1 naming each bad key
  extauthz check --url URL [flags]    send one CheckRequest as Envoy would and print the answer
  extauthz dev                        zero-setup development mode with a built-in issuer
  extauthz version                    print the version

Run "extauthz COMMAND --help" for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run dispatches a subcommand and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serveCmd(ctx, args[1:], stderr)
	case "check-config":
		return checkConfigCmd(args[1:], stdout, stderr)
	case "check":
		return checkCmd(ctx, args[1:], stdout, stderr)
	case "dev":
		err = devCmd(ctx, args[1:], stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintf(stdout, "extauthz %s\n", versionString())
		return 0
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "extauthz: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "extauthz: %v\n", err)
		return 1
	}
	return 0
}

// envOr returns the environment variable's value, or def: flags fall back
// to the environment so a container can be configured either way.
func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}
