package workflows

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	"go.temporal.io/sdk/client"
)

// serverClient dials the Temporal server at TEMPORAL_ADDRESS for a test
// that runs only when the environment variable gate is "1" (it skips,
// saying why, otherwise), and answers the client and a random suffix
// that names its task queue and workflows apart from other runs'.
func serverClient(t *testing.T, gate, why string) (client.Client, string) {
	t.Helper()
	addr := os.Getenv("TEMPORAL_ADDRESS")
	if os.Getenv(gate) != "1" || addr == "" {
		t.Skip(why + ": " + gate + "=1 and TEMPORAL_ADDRESS")
	}
	c, err := client.Dial(client.Options{HostPort: addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return c, hex.EncodeToString(b)
}
