/* SPDX-License-Identifier: Apache-2.0 */
#include "common/keys.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "common/error.h"
#include "common/fs.h"
#include "common/limits.h"

#define KEY_FILE_MAX 4096

int farm_key_valid(const char *s)
{
    uint8_t raw[32];
    return s && strlen(s) == FARM_KEY_Z85_LEN && zmq_z85_decode(raw, s) != NULL;
}

int farm_key_decode(uint8_t out[32], const char *z85)
{
    if (!farm_key_valid(z85) || !zmq_z85_decode(out, z85))
        return farm_error_set(FARM_EINVALID, "not a CURVE key (40 Z85 characters expected)");
    return 0;
}

void farm_key_encode(char out[FARM_KEY_Z85_LEN + 1], const uint8_t key[32])
{
    zmq_z85_encode(out, key, 32);
}

int farm_key_generate(farm_keypair_t *out)
{
    memset(out, 0, sizeof *out);
    if (zmq_curve_keypair(out->public_key, out->secret_key) != 0)
        return farm_error_set(FARM_ERROR, "cannot make a CURVE key pair: %s (libzmq without "
                              "CURVE support?)", zmq_strerror(errno));
    return 0;
}

void farm_key_wipe(farm_keypair_t *kp)
{
    explicit_bzero(kp->secret_key, sizeof kp->secret_key);
}

static int s_write_file(const char *path, mode_t mode, const char *text)
{
    size_t len = strlen(text);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0)
        return farm_error_set(errno == EEXIST ? FARM_EINVALID : FARM_EIO, "cannot create %s: %s%s",
                              path, strerror(errno),
                              errno == EEXIST ? " (farm never overwrites a key; remove it first)" : "");
    if (fchmod(fd, mode) != 0 || write(fd, text, len) != (ssize_t)len || fsync(fd) != 0) {
        int e = errno;
        close(fd);
        unlink(path);
        return farm_error_set(FARM_EIO, "cannot write %s: %s", path, strerror(e));
    }
    close(fd);
    return 0;
}

int farm_key_write(const char *path, const char *pub, const farm_keypair_t *kp,
                   const char *comment)
{
    char text[512];
    int rc;

    snprintf(text, sizeof text, "# farm CURVE public key of %.100s: put it in farm.yaml\n"
                                "public-key = %s\n", comment, kp->public_key);
    if ((rc = s_write_file(pub, 0644, text)) < 0)
        return rc;
    snprintf(text, sizeof text, "# farm CURVE key pair of %.100s: keep this file secret\n"
                                "public-key = %s\nsecret-key = %s\n", comment, kp->public_key,
             kp->secret_key);
    rc = s_write_file(path, 0600, text);
    explicit_bzero(text, sizeof text);
    if (rc < 0)
        unlink(pub);
    return rc;
}

/* "NAME = VALUE" lines; comments and blank lines skipped. */
static int s_field(char out[FARM_KEY_Z85_LEN + 1], const char *text, const char *name)
{
    size_t nl = strlen(name);
    for (const char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
        const char *p = l;
        while (*p == ' ' || *p == '\t')
            p++;
        if (strncmp(p, name, nl) != 0)
            continue;
        p += nl;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p++ != '=')
            continue;
        while (*p == ' ' || *p == '\t')
            p++;
        if (strlen(p) < FARM_KEY_Z85_LEN)
            return 0;
        memcpy(out, p, FARM_KEY_Z85_LEN);
        out[FARM_KEY_Z85_LEN] = '\0';
        p += FARM_KEY_Z85_LEN;
        while (*p == ' ' || *p == '\t' || *p == '\r')
            p++;
        return (*p == '\n' || *p == '\0') && farm_key_valid(out);
    }
    return 0;
}

static int s_read_file(char *buf, size_t cap, const char *path, int secret)
{
    struct stat st;
    ssize_t n;
    /* O_NONBLOCK: a FIFO planted at the path must not hang us (regular files ignore it) */
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);

    if (fd < 0)
        return farm_error_set(errno == ENOENT ? FARM_ENOTFOUND : FARM_EIO, "cannot open key file "
                              "%s: %s", path, strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return farm_error_set(FARM_EINVALID, "key file %s is not a regular file", path);
    }
    if (secret && (st.st_mode & 077)) {
        close(fd);
        return farm_error_set(FARM_EINVALID, "key file %s may be read by group or others (mode "
                              "%03o); run chmod 600 %s", path, (unsigned)(st.st_mode & 0777), path);
    }
    if (secret && st.st_uid != geteuid()) {
        close(fd);
        return farm_error_set(FARM_EINVALID, "key file %s belongs to uid %u, not to this user "
                              "(uid %u)", path, (unsigned)st.st_uid, (unsigned)geteuid());
    }
    n = read(fd, buf, cap - 1);
    close(fd);
    if (n < 0 || (size_t)n >= cap - 1)
        return farm_error_set(FARM_EINVALID, "key file %s: %s", path,
                              n < 0 ? strerror(errno) : "too large");
    buf[n] = '\0';
    return 0;
}

int farm_key_load(farm_keypair_t *out, const char *path)
{
    char text[KEY_FILE_MAX], derived[FARM_KEY_Z85_LEN + 1];
    int rc;

    memset(out, 0, sizeof *out);
    if ((rc = s_read_file(text, sizeof text, path, 1)) < 0)
        return rc;
    if (!s_field(out->public_key, text, "public-key") ||
        !s_field(out->secret_key, text, "secret-key")) {
        explicit_bzero(text, sizeof text);
        farm_key_wipe(out);
        return farm_error_set(FARM_EINVALID, "key file %s has no valid public-key and secret-key "
                              "lines (make one with farmctl keygen)", path);
    }
    explicit_bzero(text, sizeof text);
    if (zmq_curve_public(derived, out->secret_key) != 0 || strcmp(derived, out->public_key) != 0) {
        farm_key_wipe(out);
        return farm_error_set(FARM_EINVALID, "key file %s: the public key does not belong to the "
                              "secret key", path);
    }
    return 0;
}

int farm_key_load_public(char out[FARM_KEY_Z85_LEN + 1], const char *text_or_path)
{
    char text[KEY_FILE_MAX];
    int rc;

    /* a file first: a 40-character path of Z85 characters ('/', '.', '-' are) would
     * decode as a key */
    if (farm_key_valid(text_or_path) && access(text_or_path, F_OK) != 0) {
        memcpy(out, text_or_path, FARM_KEY_Z85_LEN + 1);
        return 0;
    }
    if ((rc = s_read_file(text, sizeof text, text_or_path, 0)) < 0)
        return rc;
    if (!s_field(out, text, "public-key"))
        return farm_error_set(FARM_EINVALID, "%s is neither a CURVE public key nor a file with a "
                              "public-key line", text_or_path);
    return 0;
}
