package nodeswitch

import (
	"context"
	"fmt"
	"io"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/version"

	"github.com/unshim/unshim/pkg/nodeplan"
	"github.com/unshim/unshim/pkg/transport"
	"github.com/unshim/unshim/pkg/winplan"
)

// Preview is a dry run of the switch of o.Node, as one value: for a Windows
// node the PowerShell plan, made from the Node alone (open is not called);
// for a Linux node the phases DryRun returns, reading the node through the
// transport open gives (closed before Preview returns).
func Preview(ctx context.Context, o Options, open func(context.Context) (transport.Transport, error)) (*nodeplan.DryRun, error) {
	node, err := o.Client.CoreV1().Nodes().Get(ctx, o.Node, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", o.Node, err)
	}
	if node.Status.NodeInfo.OperatingSystem == nodeplan.Windows {
		kv, err := version.ParseGeneric(node.Status.NodeInfo.KubeletVersion)
		if err != nil {
			return nil, fmt.Errorf("node %s kubelet version: %w", o.Node, err)
		}
		in := winplan.Input{NodeName: o.Node, Kubelet: kv, Target: o.Settings.Target}
		if o.ContainerdVersion != "" {
			if in.Containerd, err = version.ParseGeneric(o.ContainerdVersion); err != nil {
				return nil, fmt.Errorf("containerd version: %w", err)
			}
		}
		script, err := winplan.Plan(in)
		if err != nil {
			return nil, err
		}
		return nodeplan.WindowsDryRun(o.Settings.Target, script), nil
	}
	if o.Transport, err = open(ctx); err != nil {
		return nil, err
	}
	if c, ok := o.Transport.(io.Closer); ok {
		defer c.Close()
	}
	steps, p, err := DryRun(ctx, o)
	if err != nil {
		return nil, err
	}
	return nodeplan.LinuxDryRun(o.Node, p, steps), nil
}
