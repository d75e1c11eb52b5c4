/* SPDX-License-Identifier: Apache-2.0 */
/* OCI layouts and indexes: a layout written here (real sha256 blobs) is read back with
 * its platform and digests; tampered, oversized-by-descriptor, traversing and
 * multi-image layouts are refused; the composed index is byte-exact. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/digest.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/oci.h"

#define A64 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define B64 "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define C64 "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"

typedef struct {
    char dir[256];
    char manifest[FARM_DIGEST_STRLEN], config[FARM_DIGEST_STRLEN];
    char layer1[FARM_DIGEST_STRLEN], layer2[FARM_DIGEST_STRLEN];
    size_t manifest_len;
} layout_t;

static void s_write(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void s_write_str(const char *dir, const char *name, const char *s)
{
    char path[512];
    assert_int_equal(farm_path_join(path, sizeof path, dir, name), 0);
    s_write(path, s, strlen(s));
}

/* Writes blob bytes under blobs/sha256/ and returns its digest. */
static void s_blob(const char *dir, char out[FARM_DIGEST_STRLEN], const void *data, size_t len)
{
    char path[512];
    farm_digest_buffer(out, data, len);
    assert_int_equal(farm_path_fmt(path, sizeof path, "%s/blobs/sha256/%s", dir, out + 7), 0);
    s_write(path, data, len);
}

static void s_blob_path(char *buf, size_t len, const char *dir, const char *digest)
{
    assert_int_equal(farm_path_fmt(buf, len, "%s/blobs/sha256/%s", dir, digest + 7), 0);
}

/* index.json naming one manifest descriptor. */
static void s_index(const layout_t *l, const char *media_type, const char *digest, size_t size)
{
    char buf[1024];
    assert_true(snprintf(buf, sizeof buf,
                         "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"%s\","
                         "\"digest\":\"%s\",\"size\":%zu,\"annotations\":"
                         "{\"org.opencontainers.image.ref.name\":\"latest\"}}]}",
                         media_type, digest, size) < (int)sizeof buf);
    s_write_str(l->dir, "index.json", buf);
}

/* A buildah-like layout: OCI manifest, config with the given platform, two layers. */
static void s_make_layout(layout_t *l, const char *manifest_type, const char *arch,
                          const char *variant)
{
    char path[512], cfg[1024], man[2048];
    unsigned char layer1[3000], layer2[100];

    memset(l, 0, sizeof *l);
    snprintf(l->dir, sizeof l->dir, "/tmp/farm-test-oci-XXXXXX");
    assert_non_null(mkdtemp(l->dir));
    snprintf(path, sizeof path, "%s/blobs/sha256", l->dir);
    assert_int_equal(farm_fs_mkdirs(path), 0);
    s_write_str(l->dir, "oci-layout", "{\"imageLayoutVersion\": \"1.0.0\"}");

    for (size_t i = 0; i < sizeof layer1; i++)
        layer1[i] = (unsigned char)(i * 7 + 3);
    memset(layer2, 0x5a, sizeof layer2);
    s_blob(l->dir, l->layer1, layer1, sizeof layer1);
    s_blob(l->dir, l->layer2, layer2, sizeof layer2);

    snprintf(cfg, sizeof cfg,
             "{\"created\":\"2026-11-28T10:00:00Z\",\"architecture\":\"%s\",\"os\":\"linux\"%s%s%s,"
             "\"config\":{\"Env\":[\"PATH=/bin\"]},\"rootfs\":{\"type\":\"layers\","
             "\"diff_ids\":[\"sha256:" A64 "\",\"sha256:" B64 "\"]}}",
             arch, variant ? ",\"variant\":\"" : "", variant ? variant : "", variant ? "\"" : "");
    s_blob(l->dir, l->config, cfg, strlen(cfg));

    snprintf(man, sizeof man,
             "{\"schemaVersion\":2,\"mediaType\":\"%s\",\"config\":{\"mediaType\":\"%s\","
             "\"digest\":\"%s\",\"size\":%zu},\"layers\":[{\"mediaType\":\"application/"
             "vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"%s\",\"size\":%zu},{\"mediaType\":"
             "\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"%s\",\"size\":%zu}]}",
             manifest_type,
             strcmp(manifest_type, FARM_MEDIA_OCI_MANIFEST)
                 ? "application/vnd.docker.container.image.v1+json"
                 : "application/vnd.oci.image.config.v1+json",
             l->config, strlen(cfg), l->layer1, sizeof layer1, l->layer2, sizeof layer2);
    s_blob(l->dir, l->manifest, man, strlen(man));
    l->manifest_len = strlen(man);
    s_index(l, manifest_type, l->manifest, l->manifest_len);
}

static void s_cleanup(layout_t *l)
{
    farm_fs_rmtree(l->dir);
}

/* Reading must fail with an error message containing `needle`. */
static void s_expect_refused(const layout_t *l, const char *needle)
{
    farm_oci_image_t *img = NULL;
    farm_error_clear();
    assert_true(farm_oci_layout_read(&img, l->dir) < 0);
    assert_null(img);
    if (!strstr(farm_error_last(), needle))
        fail_msg("error \"%s\" does not mention \"%s\"", farm_error_last(), needle);
}

static void test_read_arm_v7(void **state)
{
    layout_t l;
    farm_oci_image_t *img = NULL;
    char path[512];
    FILE *f;
    char buf[4096];

    s_make_layout(&l, FARM_MEDIA_OCI_MANIFEST, "arm", "v7");
    assert_int_equal(farm_oci_layout_read(&img, l.dir), 0);
    assert_non_null(img);
    assert_string_equal(img->manifest.media_type, FARM_MEDIA_OCI_MANIFEST);
    assert_string_equal(img->manifest.digest, l.manifest);
    assert_int_equal(img->manifest.size, l.manifest_len);
    assert_string_equal(img->manifest.platform.os, "linux");
    assert_string_equal(img->manifest.platform.architecture, "arm");
    assert_string_equal(img->manifest.platform.variant, "v7");
    assert_string_equal(img->config_digest, l.config);
    assert_int_equal(img->n_blobs, 3);
    assert_string_equal(img->blobs[0], l.config);
    assert_string_equal(img->blobs[1], l.layer1);
    assert_string_equal(img->blobs[2], l.layer2);
    /* the exact bytes, as pushed */
    s_blob_path(path, sizeof path, l.dir, l.manifest);
    f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fread(buf, 1, sizeof buf, f), l.manifest_len);
    fclose(f);
    assert_int_equal(img->manifest_len, l.manifest_len);
    assert_memory_equal(img->manifest_json, buf, l.manifest_len);
    farm_oci_blob_path(buf, sizeof buf, l.dir, l.layer1);
    assert_string_equal(buf, (snprintf(path, sizeof path, "%s/blobs/sha256/%s", l.dir,
                                       l.layer1 + 7), path));
    farm_oci_image_destroy(&img);
    assert_null(img);
    farm_oci_image_destroy(&img); /* NULL-safe */
    s_cleanup(&l);
}

/* buildah's arm64 config carries no variant; aarch64 spelled the kernel's way is
 * normalised too. Docker v2 manifests are accepted. */
static void test_read_arm64_docker(void **state)
{
    layout_t l;
    farm_oci_image_t *img = NULL;

    s_make_layout(&l, FARM_MEDIA_DOCKER_MANIFEST, "aarch64", NULL);
    assert_int_equal(farm_oci_layout_read(&img, l.dir), 0);
    assert_string_equal(img->manifest.media_type, FARM_MEDIA_DOCKER_MANIFEST);
    assert_string_equal(img->manifest.platform.architecture, "arm64");
    assert_string_equal(img->manifest.platform.variant, "");
    assert_string_equal(farm_platform_index_variant(&img->manifest.platform), "v8");
    farm_oci_image_destroy(&img);
    s_cleanup(&l);
}

static void test_tampered_manifest(void **state)
{
    layout_t l;
    char path[512];
    FILE *f;

    s_make_layout(&l, FARM_MEDIA_OCI_MANIFEST, "amd64", NULL);
    s_blob_path(path, sizeof path, l.dir, l.manifest);
    f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, 10, SEEK_SET);
    fputc(' ', f); /* same size, different bytes */
    fclose(f);
    s_expect_refused(&l, "expected");
    s_cleanup(&l);
}

static void test_manifest_size_mismatch(void **state)
{
    layout_t l;
    s_make_layout(&l, FARM_MEDIA_OCI_MANIFEST, "amd64", NULL);
    s_index(&l, FARM_MEDIA_OCI_MANIFEST, l.manifest, l.manifest_len - 1);
    s_expect_refused(&l, "descriptor says");
    s_cleanup(&l);
}

static void test_tampered_config(void **state)
{
    layout_t l;
    char path[512];
    FILE *f;

    s_make_layout(&l, FARM_MEDIA_OCI_MANIFEST, "arm", "v7");
    s_blob_path(path, sizeof path, l.dir, l.config);
    f = fopen(path, "r+b");
    assert_non_null(f);
    /* "arm" -> "arn": a config lying about its platform must not be believed */
    char buf[2048];
    size_t n = fread(buf, 1, sizeof buf, f);
    buf[n] = '\0';
    char *p = strstr(buf, "\"arm\"");
    assert_non_null(p);
    p[3] = 'n';
    fseek(f, 0, SEEK_SET);
    fwrite(buf, 1, n, f);
    fclose(f);
    s_expect_refused(&l, l.config);
    s_cleanup(&l);
}

static void test_layer_missing_or_short(void **state)
{
    layout_t l;
    char path[512];

    s_make_layout(&l, FARM_MEDIA_OCI_MANIFEST, "amd64", NULL);
    s_blob_path(path, sizeof path, l.dir, l.layer2);
    assert_int_equal(truncate(path, 99), 0);
    s_expect_refused(&l, "manifest says");
    assert_int_equal(unlink(path), 0);
    s_expect_refused(&l, "missing");
    s_cleanup(&l);
}

/* A digest becomes a file name: anything but sha256:<64 lowercase hex> is refused
 * before a path is built, so "../" can never reach open(). */
static void test_traversal_digest(void **state)
{
    layout_t l;
    char buf[512];
    const char *bad[] = {
        "sha256:../../../../../../../../etc/passwd",
        "sha256:../oci-layout",
        "sha256:" A64 "/../../index.json",
        "sha256:" "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "sha512:" A64 A64,
        "sha256:" A64 "0",
    };

    s_make_layout(&l, FARM_MEDIA_OCI_MANIFEST, "amd64", NULL);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        s_index(&l, FARM_MEDIA_OCI_MANIFEST, bad[i], 10);
        s_expect_refused(&l, "not a valid sha256 digest");
        farm_oci_blob_path(buf, sizeof buf, l.dir, bad[i]);
        assert_string_equal(buf, "");
    }
    s_cleanup(&l);
}

/* Replaces the image with one whose config is `cfg` and whose layers are `layers` (a
 * JSON array), and points index.json at it. */
static void s_reimage(layout_t *l, const char *cfg, const char *layers)
{
    char man[2048];

    s_blob(l->dir, l->config, cfg, strlen(cfg));
    snprintf(man, sizeof man,
             "{\"schemaVersion\":2,\"mediaType\":\"" FARM_MEDIA_OCI_MANIFEST "\",\"config\":{"
             "\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"%s\","
             "\"size\":%zu},\"layers\":%s}",
             l->config, strlen(cfg), layers);
    s_blob(l->dir, l->manifest, man, strlen(man));
    l->manifest_len = strlen(man);
    s_index(l, FARM_MEDIA_OCI_MANIFEST, l->manifest, l->manifest_len);
}

static void test_layer_traversal_digest(void **state)
{
    layout_t l;

    s_make_layout(&l, FARM_MEDIA_OCI_MANIFEST, "amd64", NULL);
    s_reimage(&l, "{\"architecture\":\"amd64\",\"os\":\"linux\"}",
              "[{\"mediaType\":\"x/y\",\"digest\":\"sha256:../../oci-layout\",\"size\":31}]");
    s_expect_refused(&l, "not a valid sha256 digest");
    s_cleanup(&l);
}

/* The platform comes from the config: one that does not say it, or says junk, is
 * refused naming the config, not pushed under a guessed platform. */
static void test_config_platform_refused(void **state)
{
    layout_t l;
    char want[128];

    s_make_layout(&l, FARM_MEDIA_OCI_MANIFEST, "amd64", NULL);
    s_reimage(&l, "{\"architecture\":\"amd64\"}", "[]");
    s_expect_refused(&l, "os and architecture must be strings");
    s_reimage(&l, "{\"architecture\":7,\"os\":\"linux\"}", "[]");
    s_expect_refused(&l, "os and architecture must be strings");
    s_reimage(&l, "{\"architecture\":\"mystery\",\"os\":\"linux\"}", "[]");
    snprintf(want, sizeof want, "image config %s", l.config);
    s_expect_refused(&l, want);
    s_expect_refused(&l, "unknown architecture \"mystery\"");
    s_cleanup(&l);
}

/* A descriptor's size is checked against the ceiling before anything is read. */
static void test_manifest_over_limit(void **state)
{
    layout_t l;
    farm_oci_image_t *img = NULL;

    s_make_layout(&l, FARM_MEDIA_OCI_MANIFEST, "amd64", NULL);
    s_index(&l, FARM_MEDIA_OCI_MANIFEST, l.manifest, (size_t)FARM_MANIFEST_MAX + 1);
    assert_int_equal(farm_oci_layout_read(&img, l.dir), FARM_ETOOBIG);
    assert_null(img);
    assert_non_null(strstr(farm_error_last(), "over the 4 MiB limit"));
    s_cleanup(&l);
}

static void test_not_one_image(void **state)
{
    layout_t l;
    char buf[1024];

    s_make_layout(&l, FARM_MEDIA_OCI_MANIFEST, "amd64", NULL);
    /* two manifests */
    snprintf(buf, sizeof buf,
             "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"%s\",\"digest\":\"%s\","
             "\"size\":%zu},{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":%zu}]}",
             FARM_MEDIA_OCI_MANIFEST, l.manifest, l.manifest_len, FARM_MEDIA_OCI_MANIFEST,
             l.manifest, l.manifest_len);
    s_write_str(l.dir, "index.json", buf);
    s_expect_refused(&l, "exactly one image");
    /* none */
    s_write_str(l.dir, "index.json", "{\"schemaVersion\":2,\"manifests\":[]}");
    s_expect_refused(&l, "exactly one image");
    /* the one descriptor is itself an index (a multi-platform build) */
    s_index(&l, FARM_MEDIA_OCI_INDEX, l.manifest, l.manifest_len);
    s_expect_refused(&l, "is an image index");
    s_index(&l, FARM_MEDIA_DOCKER_LIST, l.manifest, l.manifest_len);
    s_expect_refused(&l, "is an image index");
    s_cleanup(&l);
}

static void test_bad_layout_file(void **state)
{
    layout_t l;
    char path[512];

    s_make_layout(&l, FARM_MEDIA_OCI_MANIFEST, "amd64", NULL);
    s_write_str(l.dir, "oci-layout", "{\"imageLayoutVersion\":\"2.0.0\"}");
    s_expect_refused(&l, "imageLayoutVersion");
    snprintf(path, sizeof path, "%s/oci-layout", l.dir);
    unlink(path);
    s_expect_refused(&l, "not an OCI image layout");
    s_cleanup(&l);
}

static void s_child(farm_descriptor_t *d, const char *digest, uint64_t size, const char *plat)
{
    memset(d, 0, sizeof *d);
    snprintf(d->media_type, sizeof d->media_type, "%s", FARM_MEDIA_OCI_MANIFEST);
    snprintf(d->digest, sizeof d->digest, "%s", digest);
    d->size = size;
    assert_int_equal(farm_platform_parse(&d->platform, plat), 0);
}

#define EXPECT_MANIFESTS                                                                       \
    "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\","         \
    "\"manifests\":["                                                                          \
    "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:" A64 \
    "\",\"size\":1234,\"platform\":{\"architecture\":\"amd64\",\"os\":\"linux\"}},"            \
    "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:" B64 \
    "\",\"size\":567,\"platform\":{\"architecture\":\"arm64\",\"os\":\"linux\","               \
    "\"variant\":\"v8\"}},"                                                                    \
    "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:" C64 \
    "\",\"size\":890,\"platform\":{\"architecture\":\"arm\",\"os\":\"linux\","                 \
    "\"variant\":\"v7\"}}]"

static void test_index_compose_exact(void **state)
{
    farm_descriptor_t c[3];
    char *json = NULL, d1[FARM_DIGEST_STRLEN], d2[FARM_DIGEST_STRLEN];
    size_t len = 0;
    const char *keys[] = {"org.opencontainers.image.created", "org.opencontainers.image.source"};
    const char *vals[] = {"2026-11-28T10:00:00Z", "https://example.com/app"};

    s_child(&c[0], "sha256:" A64, 1234, "linux/amd64");
    s_child(&c[1], "sha256:" B64, 567, "aarch64");
    s_child(&c[2], "sha256:" C64, 890, "armhf");

    assert_int_equal(farm_oci_index_compose(&json, &len, c, 3, NULL, NULL, 0), 0);
    assert_string_equal(json, EXPECT_MANIFESTS "}");
    assert_int_equal(len, strlen(EXPECT_MANIFESTS "}"));
    farm_digest_buffer(d1, json, len);
    free(json);

    assert_int_equal(farm_oci_index_compose(&json, &len, c, 3, keys, vals, 2), 0);
    assert_string_equal(json, EXPECT_MANIFESTS
                        ",\"annotations\":{\"org.opencontainers.image.created\":"
                        "\"2026-11-28T10:00:00Z\",\"org.opencontainers.image.source\":"
                        "\"https://example.com/app\"}}");
    free(json);

    /* same input, same bytes, same digest */
    assert_int_equal(farm_oci_index_compose(&json, &len, c, 3, NULL, NULL, 0), 0);
    farm_digest_buffer(d2, json, len);
    assert_string_equal(d1, d2);
    free(json);
}

static void test_index_compose_refuses(void **state)
{
    farm_descriptor_t c[2] = {0};
    char *json = (char *)"untouched";
    size_t len = 5;
    const char *keys[] = {"a", "a"};
    const char *vals[] = {"1", "2"};

    assert_true(farm_oci_index_compose(&json, &len, c, 0, NULL, NULL, 0) < 0);
    assert_null(json);

    s_child(&c[0], "sha256:../../x", 1, "linux/amd64");
    assert_true(farm_oci_index_compose(&json, &len, c, 1, NULL, NULL, 0) < 0);
    assert_non_null(strstr(farm_error_last(), "not a sha256 digest"));

    s_child(&c[0], "sha256:" A64, 1, "linux/amd64");
    snprintf(c[0].media_type, sizeof c[0].media_type, "%s", FARM_MEDIA_OCI_INDEX);
    assert_true(farm_oci_index_compose(&json, &len, c, 1, NULL, NULL, 0) < 0);
    assert_non_null(strstr(farm_error_last(), "is not an image manifest"));

    s_child(&c[0], "sha256:" A64, 1, "linux/arm64");
    s_child(&c[1], "sha256:" B64, 1, "linux/arm64/v8");
    assert_true(farm_oci_index_compose(&json, &len, c, 2, NULL, NULL, 0) < 0);
    assert_non_null(strstr(farm_error_last(), "both claim"));

    s_child(&c[1], "sha256:" B64, 1, "linux/amd64");
    assert_true(farm_oci_index_compose(&json, &len, c, 2, keys, vals, 2) < 0);
    assert_non_null(strstr(farm_error_last(), "given twice"));
    assert_null(json);
}

/* ---- push into a real registry (Debian's docker-registry; fails naming the package if absent) ---- */

typedef struct {
    int calls, skipped;
    char last[FARM_DIGEST_STRLEN];
} progress_t;

static void s_progress(void *arg, const char *digest, uint64_t size, int skipped)
{
    progress_t *p = arg;
    p->calls++;
    p->skipped += skipped != 0;
    snprintf(p->last, sizeof p->last, "%s", digest);
}

/* The progress callback of a push that loses a blob behind its back once: after the last
 * blob, the repository's link to layer1 is removed from the registry's storage, as a
 * concurrent push of the same blob can leave it unreadable for a moment. */
typedef struct {
    progress_t p;
    char link[1024];
    int removed;
} racing_t;

static void s_progress_racing(void *arg, const char *digest, uint64_t size, int skipped)
{
    racing_t *r = arg;
    s_progress(&r->p, digest, size, skipped);
    if (r->p.calls == 3 && !r->removed) {
        assert_int_equal(unlink(r->link), 0);
        r->removed = 1;
    }
}

static int s_free_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

static int s_port_open(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM, 0), ok;
    ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return ok;
}

static pid_t s_registry_pid;

/* Runs even when an assertion failed: no registry outlives the test. */
static int s_registry_stop(void **state)
{
    if (s_registry_pid > 0) {
        kill(s_registry_pid, SIGTERM);
        waitpid(s_registry_pid, NULL, 0);
        s_registry_pid = 0;
    }
    return 0;
}

static void test_push_to_registry(void **state)
{
    layout_t l;
    farm_oci_image_t *img = NULL;
    farm_registry_t *reg = NULL;
    farm_registry_opts_t opts = {.insecure = 1};
    progress_t pr = {0};
    char cfg[1024], host[64], dig[FARM_DIGEST_STRLEN] = "", mt[128] = "";
    uint64_t size = 0;
    int port;
    pid_t pid;
    char logp[512];

    /* a test that cannot run fails: ctest counts a cmocka skip() as passed */
    if (access("/usr/bin/docker-registry", X_OK) != 0)
        fail_msg("/usr/bin/docker-registry is missing: install Debian's docker-registry "
                 "package (apt-get install docker-registry); this test pushes to a real registry");
    s_make_layout(&l, FARM_MEDIA_OCI_MANIFEST, "arm", "v7");
    port = s_free_port();
    snprintf(cfg, sizeof cfg,
             "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: "
             "%s/registry\nhttp:\n  addr: 127.0.0.1:%d\n",
             l.dir, port);
    s_write_str(l.dir, "registry.yml", cfg);
    snprintf(cfg, sizeof cfg, "%s/registry.yml", l.dir);
    snprintf(logp, sizeof logp, "%s/registry.log", l.dir);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl("/usr/bin/docker-registry", "docker-registry", "serve", cfg, (char *)NULL);
        _exit(127);
    }
    s_registry_pid = pid;
    for (int i = 0; i < 200 && !s_port_open(port); i++)
        usleep(50 * 1000);
    if (!s_port_open(port))
        fail_msg("docker-registry did not listen on %d (see %s)", port, logp);

    snprintf(host, sizeof host, "127.0.0.1:%d", port);
    reg = farm_registry_new(host, &opts);
    assert_non_null(reg);
    assert_int_equal(farm_oci_layout_read(&img, l.dir), 0);
    if (farm_oci_push_image(reg, "farm/test", l.dir, img, s_progress, &pr) < 0)
        fail_msg("push: %s", farm_error_last());
    assert_int_equal(pr.calls, 3);
    assert_int_equal(pr.skipped, 0);
    /* pushed by digest: the registry has the manifest, byte for byte */
    if (farm_registry_manifest_head(reg, dig, &size, mt, sizeof mt, "farm/test", l.manifest) < 0)
        fail_msg("head: %s", farm_error_last());
    assert_string_equal(dig, l.manifest);
    assert_int_equal(size, l.manifest_len);
    assert_string_equal(mt, FARM_MEDIA_OCI_MANIFEST);
    /* again: every blob is already there */
    memset(&pr, 0, sizeof pr);
    assert_int_equal(farm_oci_push_image(reg, "farm/test", l.dir, img, s_progress, &pr), 0);
    assert_int_equal(pr.calls, 3);
    assert_int_equal(pr.skipped, 3);
    /* a blob unknown when the manifest is put (MANIFEST_BLOB_UNKNOWN): the blobs are looked
     * at again, the missing one pushed again, and the manifest put again */
    {
        racing_t r;
        memset(&r, 0, sizeof r);
        snprintf(r.link, sizeof r.link,
                 "%s/registry/docker/registry/v2/repositories/farm/race/_layers/sha256/%s/link",
                 l.dir, l.layer1 + strlen("sha256:"));
        if (farm_oci_push_image(reg, "farm/race", l.dir, img, s_progress_racing, &r) < 0)
            fail_msg("push after a lost blob: %s", farm_error_last());
        assert_true(r.removed);
        assert_int_equal(r.p.calls, 6);   /* every blob twice */
        assert_int_equal(r.p.skipped, 2); /* the second time, all but the lost one were there */
        if (farm_registry_manifest_head(reg, dig, &size, mt, sizeof mt, "farm/race", l.manifest) < 0)
            fail_msg("head: %s", farm_error_last());
        assert_string_equal(dig, l.manifest);
    }

    farm_oci_image_destroy(&img);
    farm_registry_destroy(&reg);
    s_registry_stop(NULL);
    s_cleanup(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_arm_v7),
        cmocka_unit_test(test_read_arm64_docker),
        cmocka_unit_test(test_tampered_manifest),
        cmocka_unit_test(test_manifest_size_mismatch),
        cmocka_unit_test(test_tampered_config),
        cmocka_unit_test(test_layer_missing_or_short),
        cmocka_unit_test(test_traversal_digest),
        cmocka_unit_test(test_layer_traversal_digest),
        cmocka_unit_test(test_config_platform_refused),
        cmocka_unit_test(test_manifest_over_limit),
        cmocka_unit_test(test_not_one_image),
        cmocka_unit_test(test_bad_layout_file),
        cmocka_unit_test(test_index_compose_exact),
        cmocka_unit_test(test_index_compose_refuses),
        cmocka_unit_test_teardown(test_push_to_registry, s_registry_stop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
