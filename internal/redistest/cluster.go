package redistest

import (
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Cluster is a Redis Cluster of master nodes only, with the hash slots spread evenly by
// redis-cli.
type Cluster struct {
	nodes []*Server
}

// StartCluster starts masters redis-server nodes in cluster mode (at least 3, the least
// redis-cli will build a cluster from), joins them with `redis-cli --cluster create`, and
// returns once every node reports cluster_state:ok and knows every other node. The nodes are
// stopped when the test ends.
func StartCluster(tb testing.TB, masters int) *Cluster {
	tb.Helper()
	if masters < 3 {
		tb.Fatalf("redistest: StartCluster(%d): Redis Cluster needs at least 3 masters", masters)
	}
	bin := lookPath(tb, "redis-server")
	cli := lookPath(tb, "redis-cli")

	c := &Cluster{}
	for range masters {
		dir := tb.TempDir()
		c.nodes = append(c.nodes, startServer(tb, bin, dir, func(port int) []string {
			return append(baseArgs(port, dir),
				"--cluster-enabled", "yes",
				"--cluster-config-file", filepath.Join(dir, "nodes.conf"),
				// The bus port would default to port+10000, which nobody checked was free (or
				// even exists above 55535); a port of its own is picked like the client's.
				"--cluster-port", strconv.Itoa(freePort(tb)),
				// Only the tests' own kills take a node down; a long timeout keeps a loaded
				// machine's slow heartbeat from marking a live node as failing.
				"--cluster-node-timeout", "15000",
			)
		}))
	}

	args := []string{"--cluster", "create"}
	args = append(args, c.Addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	out, err := exec.Command(cli, args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("redistest: redis-cli %s: %v\n%s", strings.Join(args, " "), err, out)
	}

	want := "cluster_known_nodes:" + strconv.Itoa(masters)
	deadline := time.Now().Add(startTimeout)
	for _, n := range c.nodes {
		for {
			info, err := Do(n.Addr(), "CLUSTER", "INFO")
			s, _ := info.(string)
			if err == nil && strings.Contains(s, "cluster_state:ok") && strings.Contains(s, want) {
				break
			}
			if time.Now().After(deadline) {
				tb.Fatalf("redistest: cluster node %s not ok within %v: %v\n%s", n.Addr(), startTimeout, err, s)
			}
			time.Sleep(pollInterval)
		}
	}
	return c
}

// Addrs are the nodes' "127.0.0.1:port" addresses.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		addrs[i] = n.Addr()
	}
	return addrs
}

// Nodes are the node processes, for a test that stops or freezes one.
func (c *Cluster) Nodes() []*Server { return c.nodes }
