package nodecheck

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRecipeQuotesScripts keeps RECIPE.md's copies of the scripts identical to the
// scripts the test runs.
func TestRecipeQuotesScripts(t *testing.T) {
	dir := filepath.Join(repoRoot(t), "hack", "nodecheck")
	recipe, err := os.ReadFile(filepath.Join(dir, "RECIPE.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"agent-task.sh", "agent-cleanup.sh"} {
		script, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(recipe), "```sh\n"+string(script)+"```\n") {
			t.Errorf("RECIPE.md does not quote %s as it is", name)
		}
	}
}
