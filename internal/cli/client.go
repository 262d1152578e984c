package cli

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	soulbox "github.com/soulbox-dev/soulbox/sdk/go"
)

// clientFlags are the daemon connection flags of the client commands
// (sandbox, exec, shell, cp, files). They override SOULBOX_URL and
// SOULBOX_API_KEY (E2B_API_URL and E2B_API_KEY are read as fallbacks).
type clientFlags struct {
	url, apiKey string
}

func (f *clientFlags) register(c *cobra.Command) {
	fl := c.PersistentFlags()
	fl.StringVar(&f.url, "url", "", "daemon URL (default $SOULBOX_URL or "+soulbox.DefaultURL+")")
	fl.StringVar(&f.apiKey, "api-key", "", "API key (default $SOULBOX_API_KEY)")
}

// client returns an SDK client for the flags and environment.
func (f *clientFlags) client() (*soulbox.Client, error) {
	var opts []soulbox.Option
	if f.url != "" {
		opts = append(opts, soulbox.WithURL(f.url))
	}
	key := f.apiKey
	if key == "" {
		key = os.Getenv("SOULBOX_API_KEY")
	}
	if key == "" {
		key = os.Getenv("E2B_API_KEY")
	}
	if key == "" {
		return nil, usageErrorf("no API key: set SOULBOX_API_KEY or pass --api-key (create one with 'soulbox apikey create')")
	}
	opts = append(opts, soulbox.WithAPIKey(key))
	c, err := soulbox.NewClient(opts...)
	if err != nil {
		return nil, usageErrorf("%v", err)
	}
	return c, nil
}

// connect attaches to a sandbox by id for data-plane commands; it resumes
// a paused sandbox, as E2B's connect does.
func (f *clientFlags) connect(cmd *cobra.Command, id string) (*soulbox.Sandbox, error) {
	c, err := f.client()
	if err != nil {
		return nil, err
	}
	sbx, err := c.Connect(cmd.Context(), id)
	if err != nil {
		return nil, fmt.Errorf("sandbox %s: %w", id, err)
	}
	return sbx, nil
}

// parsePairs parses repeated KEY=VALUE flags into a map.
func parsePairs(flag string, pairs []string) (map[string]string, error) {
	if len(pairs) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(pairs))
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return nil, usageErrorf("--%s %q: want KEY=VALUE", flag, p)
		}
		m[k] = v
	}
	return m, nil
}

// formatPairs renders a map as "k=v,k2=v2", sorted by key.
func formatPairs(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ",")
}

// sandboxIDPattern is what a sandbox id may look like on the command line
// (it tells "ID:/path" apart from a local path in cp).
var sandboxIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)

func checkID(id string) error {
	if !sandboxIDPattern.MatchString(id) {
		return usageErrorf("%q is not a sandbox id", id)
	}
	return nil
}

// silentExit ends the CLI with a status and no message: the remote
// command's exit code for exec and shell.
func silentExit(code int) error {
	return &exitError{code: code, err: errors.New("")}
}

// usageArgs makes a positional-argument check's failure a usage error
// (exit status 2).
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return &exitError{code: exitUsage, err: err}
		}
		return nil
	}
}
