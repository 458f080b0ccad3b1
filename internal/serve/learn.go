package serve

import (
	"context"
	"sync"

	corev1 "k8s.io/api/core/v1"

	"github.com/archfit/archfit/internal/image"
)

// learner reads, in the background of every replica, the images its
// webhook did not know, so that the replica's next admission of them is a
// hit. It never changes a pod: the leader's controller does that.
type learner struct {
	queue    chan learnItem
	mu       sync.Mutex
	inFlight map[string]bool
}

type learnItem struct {
	pod  *corev1.Pod
	reqs []image.Request
}

// learnQueue bounds the pods waiting to be learnt from; more are dropped
// (the gate and the leader's controller still handle them).
const learnQueue = 256

func newLearner() *learner {
	return &learner{queue: make(chan learnItem, learnQueue), inFlight: map[string]bool{}}
}

// learn queues a pod's unknown images, unless they are being read already.
func (s *Server) learn(p *corev1.Pod, reqs []image.Request) {
	l := s.learner
	cred := credID(p)
	var todo []image.Request
	l.mu.Lock()
	for _, q := range reqs {
		k := knowledgeKey(q, cred)
		if !l.inFlight[k] {
			l.inFlight[k] = true
			todo = append(todo, q)
		}
	}
	l.mu.Unlock()
	if len(todo) == 0 {
		return
	}
	select {
	case l.queue <- learnItem{pod: p.DeepCopy(), reqs: todo}:
	default:
		l.done(todo, cred)
	}
}

func (l *learner) done(reqs []image.Request, cred string) {
	l.mu.Lock()
	for _, q := range reqs {
		delete(l.inFlight, knowledgeKey(q, cred))
	}
	l.mu.Unlock()
}

// learnOne reads one queued pod's images. A panic is logged and forgotten:
// the pod is gated and the controller answers for it.
func (s *Server) learnOne(ctx context.Context, it learnItem) {
	defer s.learner.done(it.reqs, credID(it.pod))
	defer func() {
		if r := recover(); r != nil {
			s.cfg.Log.Error("panic while learning images", "pod", it.pod.Namespace+"/"+it.pod.Name, "panic", r)
		}
	}()
	ictx, cancel := context.WithTimeout(ctx, s.cfg.GateDeadline)
	defer cancel()
	// Admission saw the pod with its service account's secrets merged in
	// already.
	s.inspect(ictx, it.pod, it.reqs, true)
}

// runLearner reads queued images, two pods at a time, until ctx ends.
func (s *Server) runLearner(ctx context.Context) {
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case it := <-s.learner.queue:
					s.learnOne(ctx, it)
				}
			}
		}()
	}
	wg.Wait()
}
