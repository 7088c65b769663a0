package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"go.yaml.in/yaml/v3"

	"github.com/extauthz/extauthz/internal/gctune"
	"github.com/extauthz/extauthz/pkg/config"
	"github.com/extauthz/extauthz/pkg/logging"
)

// errNoConfig is serve's answer when neither a file nor the environment
// describes a configuration.
var errNoConfig = errors.New("no configuration: name a file with --config FILE (or EXTAUTHZ_CONFIG), " +
	"or describe one resource with environment variables (EXTAUTHZ_RESOURCE, EXTAUTHZ_ISSUER, ...; docs/configuration.md, \"Configuration from the environment\")")

// loadConfig reads the configuration from the file at path, or, when path
// is empty, from the environment alone (config.FromEnv). The error names
// where it looked.
func loadConfig(path string) (*config.Config, error) {
	if path != "" {
		cfg, err := config.Load(path)
		if err != nil {
			return nil, fmt.Errorf("%s:\n%w", path, err)
		}
		return cfg, nil
	}
	if !config.EnvConfigured(os.LookupEnv) {
		return nil, errNoConfig
	}
	cfg, err := configFromEnv()
	if err != nil {
		return nil, fmt.Errorf("configuration from the environment:\n%w", err)
	}
	return cfg, nil
}

// configFromEnv builds the configuration from the process's environment,
// refusing EXTAUTHZ_* variables that nothing reads (a misspelt name would
// silently leave its setting out).
func configFromEnv() (*config.Config, error) {
	if unknown := config.UnknownEnvVars(os.Environ()); len(unknown) > 0 {
		return nil, fmt.Errorf("%s: unknown variable (the EXTAUTHZ_* names are listed in docs/configuration.md, \"Configuration from the environment\")",
			strings.Join(unknown, ", "))
	}
	return config.FromEnv(os.LookupEnv)
}

func serveCmd(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", envOr("EXTAUTHZ_CONFIG", ""), "policy file (env EXTAUTHZ_CONFIG); without one, the EXTAUTHZ_* environment variables describe one resource")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("serve: unexpected argument %q (the config file is named with --config)", fs.Arg(0))
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	out := logging.NewAsyncWriter(stderr)
	defer closeLog(out)
	log, level := logging.New(out, cfg.Log.Level, cfg.Log.Format)
	if *path == "" {
		log.Info("configuration read from the environment", "resource", cfg.Resources[0].Resource)
	}
	for _, w := range config.Warnings(cfg) {
		log.Warn("config: " + w)
	}
	redis.SetLogger(redisLog{log})
	a, err := newApp(cfg, log, appOptions{configPath: *path, fromEnv: *path == "", levelVar: level, logDropped: out.Dropped})
	if err != nil {
		return err
	}
	defer gctune.Start(uint64(cfg.Runtime.GCHeadroomBytes)).Stop() //nolint:gosec // validated: 0 to 1 TiB
	return a.run(ctx)
}

// logCloseTimeout bounds the wait for a stalled log output when the
// process stops: the lines still held then are lost with it.
const logCloseTimeout = 5 * time.Second

// closeLog writes every log line still held before serve or dev returns:
// whether it stops gracefully or on an error (which run prints after the
// lines that led to it), nothing logged is lost.
func closeLog(out *logging.AsyncWriter) {
	ctx, cancel := context.WithTimeout(context.Background(), logCloseTimeout)
	defer cancel()
	_ = out.Close(ctx)
}

// checkConfigCmd validates a config file, or with no FILE the
// configuration the environment describes; for the environment it also
// prints the effective configuration (defaults applied) as YAML, since no
// file shows it.
func checkConfigCmd(args []string, stdout, stderr io.Writer) int {
	path := ""
	switch len(args) {
	case 0:
	case 1:
		path = args[0]
	default:
		path = "-h"
	}
	if path == "-h" || path == "--help" {
		fmt.Fprintln(stderr, "usage: extauthz check-config [FILE]   (no FILE: the configuration from the EXTAUTHZ_* environment variables)")
		return 2
	}
	var cfg *config.Config
	var err error
	if path != "" {
		if cfg, err = config.Load(path); err != nil {
			fmt.Fprintf(stderr, "%s: invalid\n%v\n", path, err)
			return 1
		}
	} else if cfg, err = loadConfig(""); err != nil {
		fmt.Fprintf(stderr, "environment: invalid\n%v\n", err)
		return 1
	}
	// Warnings name wirings that are safe only if the proxy does its part;
	// the file is valid all the same.
	for _, w := range config.Warnings(cfg) {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	if path == "" {
		var b bytes.Buffer
		enc := yaml.NewEncoder(&b)
		enc.SetIndent(2)
		if err := enc.Encode(cfg); err != nil {
			fmt.Fprintf(stderr, "environment: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "# the effective configuration, from the environment\n%s", b.String())
		fmt.Fprintln(stdout, "# environment: ok")
		return 0
	}
	fmt.Fprintf(stdout, "%s: ok\n", path)
	return 0
}
