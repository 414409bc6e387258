# SPDX-License-Identifier: MIT
# Manual pages: one per public call in section 3 (the private heaps'
# myheap_* calls included), the overview in section 7,
# the wrapper that runs a program on the override library in section 1.
PA_MAN_PAGES = \
	man/allocator_cleanup.3 \
	man/allocator_dump.3 \
	man/allocator_init.3 \
	man/allocator_stats.3 \
	man/allocator_verify.3 \
	man/myalloc.3 \
	man/myalloc_aligned.3 \
	man/myalloc_usable_size.3 \
	man/mycalloc.3 \
	man/myfree.3 \
	man/myheap_alloc.3 \
	man/myheap_alloc_aligned.3 \
	man/myheap_calloc.3 \
	man/myheap_create.3 \
	man/myheap_create_in.3 \
	man/myheap_destroy.3 \
	man/myheap_free.3 \
	man/myheap_realloc.3 \
	man/myheap_reset.3 \
	man/myheap_size_for.3 \
	man/myheap_stats.3 \
	man/myheap_usable_size.3 \
	man/myheap_verify.3 \
	man/myrealloc.3 \
	man/mystrdup.3 \
	man/mystrndup.3 \
	man/pallocator.7 \
	man/pallocator-run.1
dist_man_MANS = $(PA_MAN_PAGES)

# mandoc's linter at warning level must have nothing to say about any page.
lint-man:
	@if test -z "$(MANDOC)"; then \
	  echo "lint-man: mandoc not found (Debian: apt-get install mandoc), re-run configure" >&2; \
	  exit 1; \
	fi; \
	cd $(srcdir) || exit 1; \
	out=`$(MANDOC) -Tlint -Wwarning $(PA_MAN_PAGES) 2>&1`; rc=$$?; \
	if test -n "$$out" || test $$rc -ne 0; then \
	  echo "$$out" >&2; echo "lint-man: mandoc reported problems" >&2; exit 1; \
	fi; \
	echo "lint-man: all pages clean"
PHONY_TARGETS += lint-man
