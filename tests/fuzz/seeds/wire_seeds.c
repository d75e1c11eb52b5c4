/* SPDX-License-Identifier: Apache-2.0 */
/* Writes real Envelopes, packed from the generated protobuf-c types, into DIR as the
 * seed corpus of fuzz_wire: one message of every kind a peer sends, with typical field
 * values, plus two that farm_wire_unpack must refuse (wrong version, no body).
 *   wire_seeds tests/fuzz/corpus/wire */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "farm.pb-c.h"

static const char *s_dir;

static void s_write(const char *name, const Farm__Envelope *env)
{
    size_t len = farm__envelope__get_packed_size(env);
    unsigned char *buf = malloc(len ? len : 1);
    char path[4096];
    FILE *f;

    if (!buf)
        exit(1);
    farm__envelope__pack(env, buf);
    snprintf(path, sizeof path, "%s/%s", s_dir, name);
    if (!(f = fopen(path, "wb")) || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
    free(buf);
}

/* Envelope `var` (version 1) whose body `member` is &msg. */
#define S_ENV(var, member, msg, CASE)                                                    \
    Farm__Envelope var = FARM__ENVELOPE__INIT;                                           \
    var.version = 1;                                                                     \
    var.body_case = FARM__ENVELOPE__BODY_##CASE;                                         \
    var.member = &msg

#define S_DIGEST "sha256:8a2f7e1c3d4b5a6978f0e1d2c3b4a5968778695a4b3c2d1e0f1a2b3c4d5e6f70"

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    s_dir = argv[1];
    {
        char *plats[] = {"linux/amd64", "linux/arm/v7"}, *running[] = {"j-1"};
        Farm__Hello hello = FARM__HELLO__INIT;
        hello.name = "x86-1";
        hello.n_platforms = 2;
        hello.platforms = plats;
        hello.slots = 4;
        hello.builder = "buildah 1.28.2";
        hello.version = "0.1.0";
        hello.n_running = 1;
        hello.running = running;
        hello.session = 0x1234567890abcdefULL;
        S_ENV(env, hello, hello, HELLO);
        s_write("hello", &env);
    }
    {
        char *emu[] = {"linux/arm/v7"};
        Farm__Welcome w = FARM__WELCOME__INIT;
        w.heartbeat_ms = 1000;
        w.liveness = 3;
        w.n_emulated = 1;
        w.emulated = emu;
        S_ENV(env, welcome, w, WELCOME);
        s_write("welcome", &env);
    }
    {
        Farm__Reject r = FARM__REJECT__INIT;
        r.reason = "node \"pi9\" is not in farm.yaml";
        r.rehello = 1;
        S_ENV(env, reject, r, REJECT);
        s_write("reject", &env);
    }
    {
        Farm__Heartbeat hb = FARM__HEARTBEAT__INIT;
        hb.jobs_running = 2;
        S_ENV(env, heartbeat, hb, HEARTBEAT);
        s_write("heartbeat", &env);
    }
    {
        Farm__KeyValue a = FARM__KEY_VALUE__INIT, b = FARM__KEY_VALUE__INIT;
        Farm__KeyValue *args[] = {&a, &b};
        Farm__JobAssign ja = FARM__JOB_ASSIGN__INIT;
        a.key = "VERSION";
        a.value = "1.4";
        b.key = "EMPTY";
        b.value = "";
        ja.build_id = "0f3c9a7e5b1d4e2f8a6c0b9d7e5f3a1c";
        ja.job_id = "0f3c9a7e5b1d4e2f8a6c0b9d7e5f3a1c-2";
        ja.attempt = 1;
        ja.platform = "linux/arm/v7";
        ja.context_digest = S_DIGEST;
        ja.context_size = 10240;
        ja.dockerfile = "docker/Dockerfile";
        ja.n_build_args = 2;
        ja.build_args = args;
        ja.registry = "registry.local:5000";
        ja.repository = "team/app";
        ja.insecure = 1;
        ja.emulated = 1;
        S_ENV(env, job_assign, ja, JOB_ASSIGN);
        s_write("job_assign", &env);
    }
    {
        Farm__JobLog jl = FARM__JOB_LOG__INIT;
        jl.job_id = "j-2";
        jl.attempt = 1;
        jl.line = "STEP 2/3: RUN echo \x1b[31mred\x1b[0m";
        S_ENV(env, job_log, jl, JOB_LOG);
        s_write("job_log", &env);
    }
    {
        char *tail[] = {"STEP 3/3: COPY . /app", "COMMIT"};
        Farm__Descriptor d = FARM__DESCRIPTOR__INIT;
        Farm__JobResult jr = FARM__JOB_RESULT__INIT;
        d.media_type = "application/vnd.oci.image.manifest.v1+json";
        d.digest = S_DIGEST;
        d.size = 1234;
        d.platform = "linux/arm64";
        jr.job_id = "j-2";
        jr.attempt = 1;
        jr.ok = 1;
        jr.image = &d;
        jr.n_log_tail = 2;
        jr.log_tail = tail;
        jr.build_ms = 81234;
        jr.push_ms = 912;
        S_ENV(env, job_result, jr, JOB_RESULT);
        s_write("job_result", &env);
        jr.ok = 0;
        jr.image = NULL;
        jr.error = "RUN make: exit status 2";
        s_write("job_result_failed", &env);
    }
    {
        Farm__JobCancel jc = FARM__JOB_CANCEL__INIT;
        jc.job_id = "j-2";
        jc.attempt = 3;
        jc.reason = "build cancelled by its client";
        S_ENV(env, job_cancel, jc, JOB_CANCEL);
        s_write("job_cancel", &env);
    }
    {
        Farm__ContextGet cg = FARM__CONTEXT_GET__INIT;
        cg.digest = S_DIGEST;
        cg.offset = 1 << 20;
        S_ENV(env, context_get, cg, CONTEXT_GET);
        s_write("context_get", &env);
    }
    {
        static unsigned char tar[64] = "Dockerfile\0\0\0\0\0\0";
        Farm__ContextChunk cc = FARM__CONTEXT_CHUNK__INIT;
        cc.digest = S_DIGEST;
        cc.offset = 0;
        cc.total = 10240;
        cc.data.len = sizeof tar;
        cc.data.data = tar;
        S_ENV(env, context_chunk, cc, CONTEXT_CHUNK);
        s_write("context_chunk", &env);
        cc.data.len = 0;
        cc.data.data = NULL;
        cc.error = "no such context";
        s_write("context_chunk_error", &env);
    }
    {
        Farm__ContextOffer co = FARM__CONTEXT_OFFER__INIT;
        co.digest = S_DIGEST;
        co.size = 10240;
        S_ENV(env, context_offer, co, CONTEXT_OFFER);
        s_write("context_offer", &env);
    }
    {
        Farm__ContextStatus cs = FARM__CONTEXT_STATUS__INIT;
        cs.digest = S_DIGEST;
        cs.offset = 4096;
        S_ENV(env, context_status, cs, CONTEXT_STATUS);
        s_write("context_status", &env);
    }
    {
        char *tags[] = {"registry.local:5000/team/app:1.4", "registry.local:5000/team/app:latest"};
        char *plats[] = {"linux/amd64", "linux/arm64", "linux/arm/v7"};
        Farm__KeyValue a = FARM__KEY_VALUE__INIT, *args[] = {&a};
        Farm__Submit s = FARM__SUBMIT__INIT;
        a.key = "VERSION";
        a.value = "1.4";
        s.n_tags = 2;
        s.tags = tags;
        s.n_platforms = 3;
        s.platforms = plats;
        s.dockerfile = "Dockerfile";
        s.n_build_args = 1;
        s.build_args = args;
        s.context_digest = S_DIGEST;
        s.context_size = 10240;
        s.allow_partial = 1;
        S_ENV(env, submit, s, SUBMIT);
        s_write("submit", &env);
    }
    {
        char *plats[] = {"linux/amd64", "linux/arm64"};
        Farm__Accepted a = FARM__ACCEPTED__INIT;
        a.build_id = "0f3c9a7e5b1d4e2f8a6c0b9d7e5f3a1c";
        a.n_platforms = 2;
        a.platforms = plats;
        S_ENV(env, accepted, a, ACCEPTED);
        s_write("accepted", &env);
    }
    {
        Farm__Refused r = FARM__REFUSED__INIT;
        r.reason = "platform linux/s390x: no node in farm.yaml builds it";
        S_ENV(env, refused, r, REFUSED);
        s_write("refused", &env);
    }
    {
        Farm__Event e = FARM__EVENT__INIT;
        e.build_id = "0f3c9a7e5b1d4e2f8a6c0b9d7e5f3a1c";
        e.kind = FARM__EVENT_KIND__EVENT_DISPATCHED;
        e.platform = "linux/arm64";
        e.node = "pi5";
        e.message = "attempt 1";
        e.attempt = 1;
        S_ENV(env, event, e, EVENT);
        s_write("event", &env);
        e.kind = 99; /* a kind this version does not know */
        s_write("event_unknown_kind", &env);
    }
    {
        char *nodes[] = {"x86-1", "pi5"}, *tags[] = {"registry.local:5000/team/app:1.4"};
        Farm__Descriptor c1 = FARM__DESCRIPTOR__INIT, c2 = FARM__DESCRIPTOR__INIT;
        Farm__Descriptor *children[] = {&c1, &c2};
        Farm__BuildDone bd = FARM__BUILD_DONE__INIT;
        c1.media_type = c2.media_type = "application/vnd.oci.image.manifest.v1+json";
        c1.digest = c2.digest = S_DIGEST;
        c1.size = 1000;
        c2.size = 1001;
        c1.platform = "linux/amd64";
        c2.platform = "linux/arm64";
        bd.build_id = "0f3c9a7e5b1d4e2f8a6c0b9d7e5f3a1c";
        bd.ok = 1;
        bd.index_digest = S_DIGEST;
        bd.index_size = 700;
        bd.n_children = 2;
        bd.children = children;
        bd.n_child_nodes = 2;
        bd.child_nodes = nodes;
        bd.n_tags = 1;
        bd.tags = tags;
        bd.stitch_ms = 321;
        S_ENV(env, build_done, bd, BUILD_DONE);
        s_write("build_done", &env);
    }
    {
        Farm__Cancel c = FARM__CANCEL__INIT;
        c.build_id = "0f3c9a7e5b1d4e2f8a6c0b9d7e5f3a1c";
        S_ENV(env, cancel, c, CANCEL);
        s_write("cancel", &env);
    }
    {
        Farm__NodesRequest nr = FARM__NODES_REQUEST__INIT;
        S_ENV(env, nodes_request, nr, NODES_REQUEST);
        s_write("nodes_request", &env);
    }
    {
        char *plats[] = {"linux/amd64"}, *emu[] = {"linux/arm/v7"}, *jobs[] = {"j-1", "j-2"};
        Farm__NodeInfo n1 = FARM__NODE_INFO__INIT, n2 = FARM__NODE_INFO__INIT;
        Farm__NodeInfo *nodes[] = {&n1, &n2};
        Farm__NodesReply r = FARM__NODES_REPLY__INIT;
        n1.name = "x86-1";
        n1.n_platforms = 1;
        n1.platforms = plats;
        n1.n_emulated = 1;
        n1.emulated = emu;
        n1.state = "ready";
        n1.slots = 4;
        n1.used = 2;
        n1.n_jobs = 2;
        n1.jobs = jobs;
        n2.name = "pi3";
        n2.state = "lost";
        n2.slots = 1;
        r.n_nodes = 2;
        r.nodes = nodes;
        S_ENV(env, nodes_reply, r, NODES_REPLY);
        s_write("nodes_reply", &env);
    }
    {
        Farm__Heartbeat hb = FARM__HEARTBEAT__INIT;
        S_ENV(env, heartbeat, hb, HEARTBEAT);
        env.version = 2;
        s_write("refused_version2", &env);
        env.body_case = FARM__ENVELOPE__BODY__NOT_SET;
        env.version = 1;
        s_write("refused_no_body", &env);
    }
    return 0;
}
