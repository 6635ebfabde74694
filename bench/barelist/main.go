// Command barelist is the benchmark's baseline: a bare paged LIST (plain
// client-go, protobuf, a Continue loop, items discarded) of the same
// resources `unshim check -A` reads. It prints how many objects it read.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig")
	pageSize := flag.Int64("chunk-size", 500, "page size")
	flag.Parse()
	if err := run(*kubeconfig, *pageSize); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
}

func run(kubeconfig string, pageSize int64) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	cfg.QPS, cfg.Burst = 50, 100
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ctx := context.Background()
	lists := []func(metav1.ListOptions) (runtime.Object, error){
		func(o metav1.ListOptions) (runtime.Object, error) { return c.AppsV1().ReplicaSets("").List(ctx, o) },
		func(o metav1.ListOptions) (runtime.Object, error) { return c.BatchV1().Jobs("").List(ctx, o) },
		func(o metav1.ListOptions) (runtime.Object, error) { return c.AppsV1().Deployments("").List(ctx, o) },
		func(o metav1.ListOptions) (runtime.Object, error) { return c.AppsV1().DaemonSets("").List(ctx, o) },
		func(o metav1.ListOptions) (runtime.Object, error) { return c.AppsV1().StatefulSets("").List(ctx, o) },
		func(o metav1.ListOptions) (runtime.Object, error) {
			return c.CoreV1().ReplicationControllers("").List(ctx, o)
		},
		func(o metav1.ListOptions) (runtime.Object, error) { return c.BatchV1().CronJobs("").List(ctx, o) },
		func(o metav1.ListOptions) (runtime.Object, error) { return c.CoreV1().Pods("").List(ctx, o) },
		func(o metav1.ListOptions) (runtime.Object, error) { return c.CoreV1().ConfigMaps("").List(ctx, o) },
	}
	total := 0
	for _, list := range lists {
		opts := metav1.ListOptions{Limit: pageSize}
		for {
			obj, err := list(opts)
			if err != nil {
				return err
			}
			total += meta.LenList(obj)
			lm, err := meta.ListAccessor(obj)
			if err != nil {
				return err
			}
			if lm.GetContinue() == "" {
				break
			}
			opts.Continue = lm.GetContinue()
		}
	}
	fmt.Println(total)
	return nil
}
