package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/redis/go-redis/v9"

	"github.com/extauthz/extauthz/internal/gctune"
	"github.com/extauthz/extauthz/pkg/config"
	"github.com/extauthz/extauthz/pkg/logging"
)

func serveCmd(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", envOr("EXTAUTHZ_CONFIG", ""), "policy file (env EXTAUTHZ_CONFIG)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *path == "" {
		return errors.New("serve: --config FILE is required (or set EXTAUTHZ_CONFIG)")
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return fmt.Errorf("%s:\n%w", *path, err)
	}
	log, level := logging.New(stderr, cfg.Log.Level, cfg.Log.Format)
	for _, w := range config.Warnings(cfg) {
		log.Warn("config: " + w)
	}
	redis.SetLogger(redisLog{log})
	a, err := newApp(cfg, log, appOptions{configPath: *path, levelVar: level})
	if err != nil {
		return err
	}
	defer gctune.Start(uint64(cfg.Runtime.GCHeadroomBytes)).Stop() //nolint:gosec // validated: 0 to 1 TiB
	return a.run(ctx)
}

func checkConfigCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(stderr, "usage: extauthz check-config FILE")
		return 2
	}
	cfg, err := config.Load(args[0])
	if err != nil {
		fmt.Fprintf(stderr, "%s: invalid\n%v\n", args[0], err)
		return 1
	}
	// Warnings name wirings that are safe only if the proxy does its part;
	// the file is valid all the same.
	for _, w := range config.Warnings(cfg) {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	fmt.Fprintf(stdout, "%s: ok\n", args[0])
	return 0
}
