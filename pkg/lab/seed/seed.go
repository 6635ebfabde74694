// Package seed fills a lab apiserver with nodes and workloads in a realistic
// spread (Deployments→ReplicaSets→Pods, DaemonSets, StatefulSets,
// CronJobs→Jobs→Pods, bare Pods), about 1% of them depending on Docker. The
// lab runs no controllers, so seed creates every level itself, linked by
// owner references as the controllers would.
package seed

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"sync"
	"sync/atomic"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/unshim/unshim/pkg/inventory"
	"github.com/unshim/unshim/pkg/lab"
)

// Options say how much to create.
type Options struct {
	// Pods is the number of pods to create (about; rounded to whole workloads).
	Pods int
	// DockerPercent is the share of pods whose workload depends on Docker (default 1).
	DockerPercent float64
	// PodsPerNamespace sets how many namespaces share the pods (default 500).
	PodsPerNamespace int
	// Prefix names the namespaces (prefix-0001, ...) and nodes; default "seed".
	Prefix string
	// Nodes is the number of nodes to create: about 70% on Docker (half
	// dockershim/1.23, half cri-dockerd/1.26), the rest on containerd. Default 7.
	Nodes int
	// Workers is the number of concurrent creates (default 32).
	Workers int
	// Seed makes the spread reproducible.
	Seed int64
}

// Stats counts what was created.
type Stats struct {
	Namespaces, Nodes, Pods, Workloads, DockerWorkloads, DockerPods int
}

func (o *Options) complete() {
	if o.DockerPercent == 0 {
		o.DockerPercent = 1
	}
	if o.PodsPerNamespace <= 0 {
		o.PodsPerNamespace = 500
	}
	if o.Prefix == "" {
		o.Prefix = "seed"
	}
	if o.Nodes <= 0 {
		o.Nodes = 7
	}
	if o.Workers <= 0 {
		o.Workers = 32
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
}

// Run creates the nodes and workloads.
func Run(ctx context.Context, c kubernetes.Interface, o Options) (Stats, error) {
	o.complete()
	var st Stats
	nodes, err := seedNodes(ctx, c, o)
	if err != nil {
		return st, err
	}
	st.Nodes = len(nodes)
	g := &gen{c: c, o: o, nodes: nodes, rnd: rand.New(rand.NewSource(o.Seed)), jobs: make(chan func(context.Context) error, 4*o.Workers)}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for i := 0; i < o.Workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for job := range g.jobs {
				if ctx.Err() != nil {
					continue
				}
				if err := job(ctx); err != nil {
					firstErr.CompareAndSwap(nil, err)
					cancel()
				}
			}
		}()
	}
	err = g.plan(ctx, &st)
	close(g.jobs)
	wg.Wait()
	if e, _ := firstErr.Load().(error); e != nil {
		return st, e
	}
	return st, err
}

type gen struct {
	c     kubernetes.Interface
	o     Options
	nodes []string
	rnd   *rand.Rand
	jobs  chan func(context.Context) error
	seq   int
}

func seedNodes(ctx context.Context, c kubernetes.Interface, o Options) ([]string, error) {
	var names []string
	docker := (o.Nodes*7 + 9) / 10
	for i := 0; i < o.Nodes; i++ {
		name := fmt.Sprintf("%s-node-%02d", o.Prefix, i+1)
		kubelet, rt, sock := "v1.30.14", "containerd://1.7.24", "unix:///run/containerd/containerd.sock"
		if i < docker {
			if i%2 == 0 {
				kubelet, rt, sock = "v1.23.17", "docker://20.10.24", "/var/run/dockershim.sock"
			} else {
				kubelet, rt, sock = "v1.26.15", "docker://24.0.9", "unix:///var/run/cri-dockerd.sock"
			}
		}
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Labels:      map[string]string{"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "unshim.dev/seed": o.Prefix, "node-role.kubernetes.io/worker": ""},
			Annotations: map[string]string{inventory.CRISocketAnnotation: sock},
		}}
		created, err := c.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			names = append(names, name)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("create node %s: %w", name, err)
		}
		status := corev1.NodeStatus{
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
				LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}},
			Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: fmt.Sprintf("10.0.%d.%d", i/250, i%250+1)}},
			NodeInfo: corev1.NodeSystemInfo{KubeletVersion: kubelet, ContainerRuntimeVersion: rt,
				OperatingSystem: "linux", Architecture: "amd64", OSImage: "Debian GNU/Linux 12 (bookworm)", KernelVersion: "6.1.0-28-amd64"},
		}
		// A patch, not an update: with --controllers the node lifecycle
		// controller writes the new node too, and an update would conflict.
		patch, err := json.Marshal(map[string]any{"status": status})
		if err != nil {
			return nil, err
		}
		if _, err := c.CoreV1().Nodes().Patch(ctx, created.Name, types.MergePatchType, patch, metav1.PatchOptions{}, "status"); err != nil {
			return nil, fmt.Errorf("set status of node %s: %w", name, err)
		}
		names = append(names, name)
	}
	return names, nil
}

// plan decides every workload and queues its creation.
func (g *gen) plan(ctx context.Context, st *Stats) error {
	nsCount := (g.o.Pods + g.o.PodsPerNamespace - 1) / g.o.PodsPerNamespace
	if nsCount == 0 {
		nsCount = 1
	}
	dockerBudget := int(float64(g.o.Pods)*g.o.DockerPercent/100 + 0.5)
	remaining := g.o.Pods
	for i := 0; i < nsCount; i++ {
		ns := fmt.Sprintf("%s-%04d", g.o.Prefix, i+1)
		quota := remaining / (nsCount - i)
		remaining -= quota
		created, err := g.namespace(ctx, ns)
		if err != nil {
			return err
		}
		if !created {
			continue // seeded before: leave it as it is
		}
		st.Namespaces++
		for quota > 0 {
			if ctx.Err() != nil {
				return nil
			}
			kind := g.pickKind()
			n := g.podsFor(kind)
			if n > quota {
				n = quota
			}
			docker := dockerBudget > 0 && g.rnd.Float64() < float64(dockerBudget)/float64(remaining+quota)
			if docker {
				dockerBudget -= n
				st.DockerWorkloads++
				st.DockerPods += n
			}
			g.queueWorkload(ns, kind, n, docker)
			st.Workloads++
			st.Pods += n
			quota -= n
		}
	}
	return nil
}

// namespace creates ns with its ServiceAccount; false when it already existed.
func (g *gen) namespace(ctx context.Context, ns string) (bool, error) {
	_, err := g.c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{"unshim.dev/seed": g.o.Prefix}}}, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("create namespace %s: %w", ns, err)
	}
	return true, lab.EnsureServiceAccount(ctx, g.c, ns)
}

type kind int

const (
	kDeployment kind = iota
	kDaemonSet
	kStatefulSet
	kCronJob
	kBarePod
)

func (g *gen) pickKind() kind {
	switch r := g.rnd.Intn(100); {
	case r < 60:
		return kDeployment
	case r < 75:
		return kDaemonSet
	case r < 85:
		return kStatefulSet
	case r < 95:
		return kCronJob
	default:
		return kBarePod
	}
}

func (g *gen) podsFor(k kind) int {
	switch k {
	case kDeployment:
		return 1 + g.rnd.Intn(10)
	case kDaemonSet:
		return len(g.nodes)
	case kStatefulSet:
		return 1 + g.rnd.Intn(5)
	case kCronJob:
		return 1 + g.rnd.Intn(3)
	default:
		return 1
	}
}

// dockerVariants make a pod spec depend on Docker, each in the way one rule sees.
var dockerVariants = []func(*corev1.PodSpec){
	func(s *corev1.PodSpec) { addHostPath(s, "docker-sock", "/var/run/docker.sock", "/var/run/docker.sock") },
	func(s *corev1.PodSpec) { addHostPath(s, "run", "/var/run", "/host/run") },
	func(s *corev1.PodSpec) { s.Containers[0].Image = "docker:24.0.7-dind" },
	func(s *corev1.PodSpec) {
		s.Containers[0].Env = append(s.Containers[0].Env, corev1.EnvVar{Name: "DOCKER_HOST", Value: "tcp://localhost:2375"})
	},
	func(s *corev1.PodSpec) {
		t := true
		s.Containers[0].SecurityContext = &corev1.SecurityContext{Privileged: &t}
		s.Containers[0].Command = []string{"/bin/sh", "-c", "docker image prune -af && sleep 3600"}
	},
	func(s *corev1.PodSpec) { s.Containers[0].Image = "gcr.io/datadoghq/agent:7.50.0" },
	func(s *corev1.PodSpec) {
		addHostPath(s, "containers", "/var/lib/docker/containers", "/var/lib/docker/containers")
	},
}

func addHostPath(s *corev1.PodSpec, name, hostPath, mountPath string) {
	s.Volumes = append(s.Volumes, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: hostPath}}})
	s.Containers[0].VolumeMounts = append(s.Containers[0].VolumeMounts, corev1.VolumeMount{Name: name, MountPath: mountPath})
}

// podSpec is an ordinary pod spec of realistic size: two containers, probes,
// resources, env, a ConfigMap and a projected token volume.
func (g *gen) podSpec(app string, docker bool) corev1.PodSpec {
	f := false
	s := corev1.PodSpec{
		AutomountServiceAccountToken: &f,
		Containers: []corev1.Container{{
			Name:  "app",
			Image: fmt.Sprintf("registry.example.com/team-%d/%s:v1.%d.%d", g.rnd.Intn(20), app, g.rnd.Intn(10), g.rnd.Intn(30)),
			Args:  []string{"--port=8080", "--log-level=info"},
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
			Env: []corev1.EnvVar{{Name: "APP_NAME", Value: app}, {Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
				{Name: "LOG_FORMAT", Value: "json"}},
			Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
				Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
			},
			ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}}, PeriodSeconds: 10},
			VolumeMounts:   []corev1.VolumeMount{{Name: "config", MountPath: "/etc/app"}, {Name: "tmp", MountPath: "/tmp"}},
		}, {
			Name:  "metrics",
			Image: "registry.example.com/platform/metrics-sidecar:2.3.1",
			Ports: []corev1.ContainerPort{{Name: "metrics", ContainerPort: 9090}},
		}},
		Volumes: []corev1.Volume{
			{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: app + "-config"}}}},
			{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		},
	}
	if docker {
		dockerVariants[g.rnd.Intn(len(dockerVariants))](&s)
	}
	return s
}

func (g *gen) queueWorkload(ns string, k kind, pods int, docker bool) {
	g.seq++
	app := fmt.Sprintf("app-%05d", g.seq)
	spec := g.podSpec(app, docker)
	labels := map[string]string{"app": app, "tier": []string{"web", "api", "worker", "batch"}[g.seq%4]}
	tmpl := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: spec}
	sel := &metav1.LabelSelector{MatchLabels: labels}
	nodeOffset := g.rnd.Intn(len(g.nodes))
	g.jobs <- func(ctx context.Context) error {
		var owner metav1.OwnerReference
		apps, batch := g.c.AppsV1(), g.c.BatchV1()
		switch k {
		case kDeployment:
			replicas := int32(pods)
			d, err := apps.Deployments(ns).Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: app, Labels: labels},
				Spec: appsv1.DeploymentSpec{Replicas: &replicas, Selector: sel, Template: tmpl}}, metav1.CreateOptions{})
			if err != nil {
				return fmt.Errorf("create deployment %s/%s: %w", ns, app, err)
			}
			rsLabels := withHash(labels)
			rs, err := apps.ReplicaSets(ns).Create(ctx, &appsv1.ReplicaSet{
				ObjectMeta: metav1.ObjectMeta{Name: app + "-7d9f8c6b5", Labels: rsLabels, OwnerReferences: []metav1.OwnerReference{ref("apps/v1", "Deployment", d.Name, d.UID)}},
				Spec:       appsv1.ReplicaSetSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: rsLabels}, Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: rsLabels}, Spec: spec}},
			}, metav1.CreateOptions{})
			if err != nil {
				return fmt.Errorf("create replicaset %s/%s: %w", ns, app, err)
			}
			owner = ref("apps/v1", "ReplicaSet", rs.Name, rs.UID)
		case kDaemonSet:
			ds, err := apps.DaemonSets(ns).Create(ctx, &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: app, Labels: labels},
				Spec: appsv1.DaemonSetSpec{Selector: sel, Template: tmpl}}, metav1.CreateOptions{})
			if err != nil {
				return fmt.Errorf("create daemonset %s/%s: %w", ns, app, err)
			}
			owner = ref("apps/v1", "DaemonSet", ds.Name, ds.UID)
		case kStatefulSet:
			replicas := int32(pods)
			ss, err := apps.StatefulSets(ns).Create(ctx, &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: app, Labels: labels},
				Spec: appsv1.StatefulSetSpec{Replicas: &replicas, Selector: sel, Template: tmpl, ServiceName: app}}, metav1.CreateOptions{})
			if err != nil {
				return fmt.Errorf("create statefulset %s/%s: %w", ns, app, err)
			}
			owner = ref("apps/v1", "StatefulSet", ss.Name, ss.UID)
		case kCronJob:
			jobTmpl := tmpl
			jobTmpl.Spec.RestartPolicy = corev1.RestartPolicyOnFailure
			cj, err := batch.CronJobs(ns).Create(ctx, &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: app, Labels: labels},
				Spec: batchv1.CronJobSpec{Schedule: "*/15 * * * *", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: jobTmpl}}}}, metav1.CreateOptions{})
			if err != nil {
				return fmt.Errorf("create cronjob %s/%s: %w", ns, app, err)
			}
			par := int32(pods)
			job, err := batch.Jobs(ns).Create(ctx, &batchv1.Job{
				ObjectMeta: metav1.ObjectMeta{Name: app + "-28912345", Labels: labels, OwnerReferences: []metav1.OwnerReference{ref("batch/v1", "CronJob", cj.Name, cj.UID)}},
				Spec:       batchv1.JobSpec{Parallelism: &par, Template: jobTmpl},
			}, metav1.CreateOptions{})
			if err != nil {
				return fmt.Errorf("create job %s/%s: %w", ns, app, err)
			}
			owner = ref("batch/v1", "Job", job.Name, job.UID)
			spec = jobTmpl.Spec
		}
		for i := 0; i < pods; i++ {
			name := app
			if k != kBarePod {
				name = fmt.Sprintf("%s-%d", app, i)
			}
			p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}, Spec: *spec.DeepCopy()}
			if owner.Name != "" {
				p.OwnerReferences = []metav1.OwnerReference{owner}
			}
			p.Spec.NodeName = g.nodes[(nodeOffset+i)%len(g.nodes)]
			if _, err := g.c.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("create pod %s/%s: %w", ns, name, err)
			}
		}
		return nil
	}
}

func withHash(l map[string]string) map[string]string {
	out := map[string]string{"pod-template-hash": "7d9f8c6b5"}
	for k, v := range l {
		out[k] = v
	}
	return out
}

func ref(apiVersion, kind, name string, uid types.UID) metav1.OwnerReference {
	t := true
	return metav1.OwnerReference{APIVersion: apiVersion, Kind: kind, Name: name, UID: uid, Controller: &t, BlockOwnerDeletion: &t}
}
