package main

import (
	"runtime"
	"runtime/debug"
)

// versionString names the build: the -ldflags version, else the module
// version or VCS revision Go recorded, and the Go release.
func versionString() string {
	v := version
	if bi, ok := debug.ReadBuildInfo(); ok && v == "dev" {
		if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += "+" + s.Value[:12]
			}
		}
	}
	return v + " (" + runtime.Version() + ")"
}
