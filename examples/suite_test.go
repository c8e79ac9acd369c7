// Package examples is a Ginkgo suite written the way a user of labctl's
// library writes one for their own cluster's plan: it uses only the public
// API of package lab (and spec to load a topology), and needs no labctl
// binary: the program that imports lab also serves the lab's apps.
package examples

import (
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

func TestExamples(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "labctl library examples")
}
