package failover

import (
	"testing"

	"github.com/hypercx/vrouter/services"
)

// one-sdnat4 is a data-plane service: started on the master when
// ONEAPP_VNF_SDNAT4_ENABLED is YES (default NO), stopped elsewhere, and
// reloaded in place (SIGHUP) on a context change while serving.
func TestSDNAT4IsADataPlaneService(t *testing.T) {
	found := false
	for _, e := range Table() {
		if e.Name == "one-sdnat4" {
			found = e.Var == "ONEAPP_VNF_SDNAT4_ENABLED" && !e.Default
		}
	}
	if !found {
		t.Fatal("one-sdnat4 is not in the failover table with ONEAPP_VNF_SDNAT4_ENABLED (default NO)")
	}
	script, err := services.Script("one-sdnat4")
	if err != nil {
		t.Fatal(err)
	}
	if !reloadCommand.Match(script) {
		t.Fatal("services/one-sdnat4 declares no reload: failover would restart it on every context change")
	}
}
