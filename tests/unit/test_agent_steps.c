/* SPDX-License-Identifier: Apache-2.0 */
/* agent/steps: a build's steps timed from buildah's output as the agent relays it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "agent/steps.h"

static farm_steps_t s_st;

/* Output of `buildah build --layers` for a three-step Dockerfile, the first step cached,
 * and the times (ms) each line reached the agent. */
static void test_single_stage(void **state)
{
    static const struct {
        long long at;
        const char *line;
    } out[] = {
        {1000, "STEP 1/3: FROM docker.io/library/alpine:3.19"},
        {1100, "--> Using cache 4048db5d36726e313ab8f7ffccf2362a34cba69e4cdd49119713483a68641fce"},
        {1300, "STEP 2/3: RUN apk add --no-cache make"},
        {1350, "fetch https://dl-cdn.alpinelinux.org/alpine/v3.19/main/x86_64/APKINDEX.tar.gz"},
        {5300, "--> 9d1e3c1a0f2b"},
        {5300, "STEP 3/3: COPY . /src"},
        {5340, "COMMIT registry.example:5000/app"},
        {5900, "--> 6a2b0f7c11de"},
        {5950, "Successfully tagged registry.example:5000/app:latest"},
    };
    (void)state;
    memset(&s_st, 0, sizeof s_st);
    for (size_t i = 0; i < sizeof out / sizeof *out; i++)
        farm_steps_line(&s_st, out[i].line, out[i].at);
    farm_steps_end(&s_st, 7000);
    assert_int_equal(s_st.n, 3);
    assert_int_equal(s_st.steps[0].number, 1);
    assert_true(s_st.steps[0].cached);
    assert_int_equal(s_st.steps[0].ms, 300);
    assert_string_equal(s_st.steps[1].text, "STEP 2/3: RUN apk add --no-cache make");
    assert_false(s_st.steps[1].cached);
    assert_int_equal(s_st.steps[1].ms, 4000);
    assert_int_equal(s_st.steps[2].ms, 40); /* ends at COMMIT, not at the build's end */
    assert_false(s_st.steps[2].cached);
}

/* Multi-stage numbering ("[1/2] STEP 1/2: ..."), a RUN step printing lines that look like
 * steps (not at a line's start), a "--> Using cache" with no step open, and a build that
 * ends while a step runs (it failed): that step ends at the end. */
static void test_stages_and_lookalikes(void **state)
{
    (void)state;
    memset(&s_st, 0, sizeof s_st);
    farm_steps_line(&s_st, "--> Using cache abc", 0);
    farm_steps_line(&s_st, "[1/2] STEP 1/2: FROM golang:1.22 AS build", 10);
    farm_steps_line(&s_st, "echo STEP 9/9: not a step", 20);
    farm_steps_line(&s_st, "[1/2] STEP 2/2: RUN go build ./...", 30);
    farm_steps_line(&s_st, "[2/2] STEP 1/2: FROM alpine", 530);
    farm_steps_line(&s_st, "--> Using cache def", 531);
    farm_steps_line(&s_st, "[2/2] STEP 2/2: RUN false", 600);
    farm_steps_line(&s_st, "STEP 1/x: broken", 650);
    farm_steps_end(&s_st, 700);
    farm_steps_end(&s_st, 900); /* twice: the first end holds */
    assert_int_equal(s_st.n, 4);
    assert_int_equal(s_st.steps[0].ms, 20);
    assert_false(s_st.steps[0].cached);
    assert_int_equal(s_st.steps[1].ms, 500);
    assert_int_equal(s_st.steps[2].number, 1);
    assert_true(s_st.steps[2].cached);
    assert_int_equal(s_st.steps[3].ms, 100);
}

/* A Dockerfile with more steps than are timed, and a step line longer than is kept. */
static void test_bounds(void **state)
{
    char line[600];
    (void)state;
    memset(&s_st, 0, sizeof s_st);
    for (int i = 1; i <= FARM_STEPS_MAX + 10; i++) {
        snprintf(line, sizeof line, "STEP %d/%d: RUN echo %0400d", i, FARM_STEPS_MAX + 10, i);
        farm_steps_line(&s_st, line, i * 10LL);
    }
    farm_steps_end(&s_st, 1000000);
    assert_int_equal(s_st.n, FARM_STEPS_MAX);
    assert_int_equal(strlen(s_st.steps[0].text), FARM_STEP_TEXT_MAX);
    assert_int_equal(s_st.steps[FARM_STEPS_MAX - 1].ms, 10); /* ended by the next, untimed */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_stage),
        cmocka_unit_test(test_stages_and_lookalikes),
        cmocka_unit_test(test_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
