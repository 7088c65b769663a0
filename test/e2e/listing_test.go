package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/testkit"
)

// TestFilteredListingsParseWithTheSDK: what the list filter (pkg/extproc) sends a caller with
// mcp:read, for each answer recorded from server-everything (its golden files,
// pkg/extproc/testdata/filtered-*), is read by the official SDK 1.x client as a valid answer
// with exactly the entries the filter kept: JSON and event streams, through the SDK's own
// transport, SSE parser and result schemas (listing.mjs).
func TestFilteredListingsParseWithTheSDK(t *testing.T) {
	root, err := testkit.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	e2eDir := filepath.Join(root, "test", "e2e")
	node := checkNodeDeps(t, e2eDir)
	data := filepath.Join(root, "pkg", "extproc", "testdata")
	type answer struct {
		Method      string `json:"method"`
		ID          int    `json:"id"`
		ContentType string `json:"contentType"`
		File        string `json:"file"`
		want        []string
	}
	tools := []string{"echo", "gzip-file-as-resource", "trigger-long-running-operation"}
	answers := []answer{
		{"tools/list", 2, "application/json", "filtered-everything-tools-list.json", tools},
		{"tools/list", 2, "text/event-stream", "filtered-everything-tools-list.sse", tools},
		{"prompts/list", 3, "text/event-stream", "filtered-everything-prompts-list.sse",
			[]string{"simple-prompt", "completable-prompt", "resource-prompt"}},
		{"resources/list", 3, "text/event-stream", "filtered-everything-resources-list.sse", []string{
			"demo://resource/static/document/architecture.md", "demo://resource/static/document/extension.md",
			"demo://resource/static/document/features.md", "demo://resource/static/document/how-it-works.md",
			"demo://resource/static/document/instructions.md"}},
		{"resources/templates/list", 3, "text/event-stream", "filtered-everything-resource-templates-list.sse",
			[]string{"demo://resource/dynamic/text/{resourceId}"}},
	}
	for i := range answers {
		answers[i].File = filepath.Join(data, answers[i].File)
	}
	arg, err := json.Marshal(map[string]any{"answers": answers})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "listing.mjs", string(arg))
	cmd.Dir = e2eDir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("listing.mjs: %v\n%s", err, stderr.String())
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	i := 0
	for sc.Scan() {
		var got struct {
			Method string   `json:"method"`
			Names  []string `json:"names"`
		}
		if err := json.Unmarshal(sc.Bytes(), &got); err != nil {
			t.Fatalf("line %q: %v", sc.Bytes(), err)
		}
		if i >= len(answers) {
			t.Fatalf("extra line %s", sc.Bytes())
		}
		if a := answers[i]; got.Method != a.Method || !slices.Equal(got.Names, a.want) {
			t.Errorf("%s (%s): the SDK read %q, want %q", a.Method, a.ContentType, got.Names, a.want)
		}
		i++
	}
	if i != len(answers) {
		t.Errorf("%d answers read, want %d", i, len(answers))
	}
}
