// Package kubelist owns unshim's paged LISTs: every resource the tool reads
// from a cluster is read a page at a time through here, with the next page
// fetched while the current one is processed, so memory stays bounded by the
// page size however large the cluster.
package kubelist

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/pager"
)

// DefaultPageSize is the page size used when none is given.
const DefaultPageSize = 500

// PageFunc lists one page.
type PageFunc func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error)

// Each calls fn for every item that list returns, page by page. what names the
// resource in errors. A page size of 0 means DefaultPageSize.
func Each(ctx context.Context, what string, pageSize int64, opts metav1.ListOptions, list PageFunc, fn func(runtime.Object) error) error {
	if pageSize <= 0 {
		pageSize = DefaultPageSize
	}
	p := pager.New(pager.ListPageFunc(list))
	p.PageSize = pageSize
	// One page in flight while the last one is processed; never fall back to an
	// unpaged LIST, which would hold the whole collection in memory.
	p.PageBufferSize = 1
	p.FullListIfExpired = false
	if err := p.EachListItem(ctx, opts, fn); err != nil {
		return fmt.Errorf("list %s: %w", what, err)
	}
	return nil
}
