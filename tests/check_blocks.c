/* SPDX-License-Identifier: MIT */
/*
 * check_blocks.c - block metadata: header layout, boundary tags, split and
 * merge, exercised on a plain buffer.
 */
#include <check.h>
#include <string.h>

#include "block.h"

#define AREA 4096
/* Slack past the area: the compiler sizes the sentinel as a whole block_t. */
static _Alignas(16) unsigned char area[AREA + sizeof(block_t)];

START_TEST(test_layout)
{
    ck_assert_uint_eq(BLOCK_HEADER_SIZE, 16);
    ck_assert_uint_eq(BLOCK_MIN_SIZE, 32);
    block_t *b = (block_t *)area;
    ck_assert_ptr_eq(block_payload(b), area + 16);
    ck_assert_ptr_eq(block_from_payload(area + 16), b);
    ck_assert_uint_eq((uintptr_t)block_payload(b) % 16, 0);
}
END_TEST

START_TEST(test_make_area)
{
    block_t *b = block_make_area(area, AREA);
    ck_assert_uint_eq(block_size(b), AREA - BLOCK_HEADER_SIZE);
    ck_assert(!block_is_free(b));
    ck_assert(!block_prev_is_free(b));
    ck_assert_uint_eq(block_usable(b), AREA - 2 * BLOCK_HEADER_SIZE);
    block_t *sentinel = block_next(b);
    ck_assert(block_is_sentinel(sentinel));
    ck_assert_ptr_eq((unsigned char *)sentinel, area + AREA - BLOCK_HEADER_SIZE);
}
END_TEST

START_TEST(test_split_and_absorb)
{
    block_t *b = block_make_area(area, AREA);
    size_t whole = block_size(b);
    block_t *rest = block_split(b, 64);
    ck_assert_uint_eq(block_size(b), 64);
    ck_assert_ptr_eq(block_next(b), rest);
    ck_assert_uint_eq(block_size(rest), whole - 64);
    ck_assert(block_is_sentinel(block_next(rest)));
    ck_assert(!block_is_free(rest));
    block_absorb(b, rest);
    ck_assert_uint_eq(block_size(b), whole);
    ck_assert(block_is_sentinel(block_next(b)));
}
END_TEST

START_TEST(test_boundary_tags)
{
    block_t *a = block_make_area(area, AREA);
    block_t *b = block_split(a, 96);
    block_t *c = block_split(b, 128);
    block_mark_free(b);
    ck_assert(block_is_free(b));
    ck_assert(block_prev_is_free(c));
    ck_assert_ptr_eq(c->prev_phys, b);
    ck_assert(!block_prev_is_free(b));
    /* Setting a size keeps the flags. */
    block_set_size(b, 128);
    ck_assert(block_is_free(b));
    block_mark_used(b);
    ck_assert(!block_is_free(b));
    ck_assert(!block_prev_is_free(c));
    ck_assert_uint_eq(block_size(c), AREA - BLOCK_HEADER_SIZE - 96 - 128);
}
END_TEST

static Suite *blocks_suite(void)
{
    Suite *s = suite_create("blocks");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_layout);
    tcase_add_test(tc, test_make_area);
    tcase_add_test(tc, test_split_and_absorb);
    tcase_add_test(tc, test_boundary_tags);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(blocks_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
