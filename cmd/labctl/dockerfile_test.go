package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// The container image must hold every Debian package scripts/setup.sh
// installs for labs (git only builds, so the image's build stage has it):
// an image without nft cannot run kube-proxy's nftables mode, and nothing
// else would notice, since CI runs setup.sh, not the image.
func TestDockerImageInstallsWhatSetupInstalls(t *testing.T) {
	setup, err := os.ReadFile("../../scripts/setup.sh")
	if err != nil {
		t.Fatal(err)
	}
	docker, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^packages=\(([^)]*)\)`).FindSubmatch(setup)
	if m == nil {
		t.Fatal("scripts/setup.sh: no packages=(...) line")
	}
	install := regexp.MustCompile(`apt-get install[^&]*`).Find(docker)
	if install == nil {
		t.Fatal("Dockerfile: no apt-get install")
	}
	have := map[string]bool{}
	for _, f := range strings.Fields(strings.ReplaceAll(string(install), "\\", " ")) {
		have[f] = true
	}
	for _, p := range strings.Fields(string(m[1])) {
		if p == "git" {
			continue
		}
		if !have[p] {
			t.Errorf("Dockerfile's apt-get install lacks %q, which scripts/setup.sh installs", p)
		}
	}
}
