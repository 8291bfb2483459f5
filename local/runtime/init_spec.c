/* Encoding and decoding of init's instructions; see init_spec.h. */
#include "init_spec.h"

#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "dirfile.h"
#include "init_proto.h"
#include "rpc_encode.h"
#include "rpc_params.h"

/* A spec file holds the mounted files too; they are bounded by the gRPC message size. */
#define SPEC_MAX (256u * 1024 * 1024)

#define PACK(expr)                                                                                 \
    do {                                                                                           \
        if ((expr) != 0)                                                                           \
            return -CWS_E_NOMEM;                                                                   \
    } while (0)

static size_t strv_len(char *const *v)
{
    size_t n = 0;
    while (v && v[n])
        n++;
    return n;
}

static int pack_kv_strv(msgpack_packer *pk, const char *key, char *const *v)
{
    size_t n = strv_len(v);
    PACK(cws_rpc_pack_cstr(pk, key));
    PACK(msgpack_pack_array(pk, n));
    for (size_t i = 0; i < n; i++)
        PACK(cws_rpc_pack_cstr(pk, v[i]));
    return 0;
}

static int pack_files(msgpack_packer *pk, const struct cws_init_spec *s)
{
    PACK(cws_rpc_pack_cstr(pk, "files"));
    PACK(msgpack_pack_array(pk, s->n_files));
    for (size_t i = 0; i < s->n_files; i++) {
        PACK(msgpack_pack_map(pk, 2));
        PACK(cws_rpc_pack_kv_cstr(pk, "path", s->files[i].path));
        PACK(cws_rpc_pack_kv_bin(pk, "data", s->files[i].data, s->files[i].len));
    }
    return 0;
}

static int pack_spec(msgpack_packer *pk, const struct cws_init_spec *s)
{
    PACK(msgpack_pack_map(pk, 12));
    PACK(cws_rpc_pack_kv_cstr(pk, "id", s->id));
    PACK(pack_kv_strv(pk, "argv", s->argv));
    PACK(pack_kv_strv(pk, "env", s->env));
    PACK(cws_rpc_pack_kv_cstr(pk, "cwd", s->cwd ? s->cwd : "/"));
    PACK(cws_rpc_pack_kv_cstr(pk, "lower", s->lower));
    PACK(cws_rpc_pack_kv_bool(pk, "host_root", s->host_root));
    PACK(cws_rpc_pack_kv_bool(pk, "userns", s->userns));
    PACK(cws_rpc_pack_kv_bool(pk, "wait_go", s->wait_go));
    PACK(cws_rpc_pack_kv_bool(pk, "egress", s->egress));
    PACK(pack_kv_strv(pk, "hidden", s->hidden));
    PACK(pack_files(pk, s));
    PACK(cws_rpc_pack_kv_int(pk, "version", 1));
    return 0;
}

int cws_init_spec_write(int dirfd, const struct cws_init_spec *spec, struct cws_error *err)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int r = pack_spec(&pk, spec);
    if (r < 0)
        r = cws_error_set(err, CWS_E_NOMEM, NULL);
    else
        r = cws_dirfile_write(dirfd, CWS_SB_SPEC, sb.data, sb.size, 0600, false, err);
    msgpack_sbuffer_destroy(&sb);
    return r;
}

void cws_init_spec_free(struct cws_init_spec *s)
{
    if (!s)
        return;
    free(s->id);
    cws_strv_free(s->argv);
    cws_strv_free(s->env);
    free(s->cwd);
    free(s->lower);
    cws_strv_free(s->hidden);
    for (size_t i = 0; i < s->n_files; i++) {
        free(s->files[i].path);
        free(s->files[i].data);
    }
    free(s->files);
    free(s);
}

static int read_files(const msgpack_object *map, struct cws_init_spec *s, struct cws_error *err)
{
    const msgpack_object *a;
    int r = cws_rpc_param_array(map, "files", &a, err);
    if (r <= 0)
        return r;
    s->files = calloc(a->via.array.size + 1, sizeof(*s->files));
    if (!s->files)
        return cws_error_set(err, CWS_E_NOMEM, NULL);
    for (uint32_t i = 0; i < a->via.array.size; i++) {
        const msgpack_object *f = &a->via.array.ptr[i];
        struct cws_init_file *out = &s->files[s->n_files];
        const void *data;
        size_t len;
        r = cws_rpc_required(cws_rpc_param_str(f, "path", &out->path, err), "path", err);
        if (r < 0)
            return r;
        s->n_files++;
        r = cws_rpc_required(cws_rpc_param_bytes(f, "data", &data, &len, err), "data", err);
        if (r < 0)
            return r;
        out->data = malloc(len ? len : 1);
        if (!out->data)
            return cws_error_set(err, CWS_E_NOMEM, NULL);
        memcpy(out->data, data, len);
        out->len = len;
    }
    return 0;
}

static int read_bool(const msgpack_object *map, const char *key, bool *ret, struct cws_error *err)
{
    int r = cws_rpc_param_bool(map, key, ret, err);
    return r < 0 ? r : 0;
}

static int decode_spec(const msgpack_object *map, struct cws_init_spec *s, struct cws_error *err)
{
    size_t n;
    int r;
    if ((r = cws_rpc_required(cws_rpc_param_str(map, "id", &s->id, err), "id", err)) < 0 ||
        (r = cws_rpc_required(cws_rpc_param_strv_array(map, "argv", &s->argv, &n, err), "argv",
                              err)) < 0 ||
        (r = cws_rpc_required(cws_rpc_param_strv_array(map, "env", &s->env, &n, err), "env", err)) <
            0 ||
        (r = cws_rpc_required(cws_rpc_param_str(map, "cwd", &s->cwd, err), "cwd", err)) < 0 ||
        (r = cws_rpc_required(cws_rpc_param_str(map, "lower", &s->lower, err), "lower", err)) < 0 ||
        (r = cws_rpc_required(cws_rpc_param_strv_array(map, "hidden", &s->hidden, &n, err),
                              "hidden", err)) < 0)
        return r;
    if ((r = read_bool(map, "host_root", &s->host_root, err)) < 0 ||
        (r = read_bool(map, "userns", &s->userns, err)) < 0 ||
        (r = read_bool(map, "wait_go", &s->wait_go, err)) < 0 ||
        (r = read_bool(map, "egress", &s->egress, err)) < 0)
        return r;
    if (!s->argv[0])
        return cws_error_set(err, CWS_E_INVALID_ARGUMENT, "argv is empty");
    return read_files(map, s, err);
}

int cws_init_spec_read(int dirfd, struct cws_init_spec **ret, struct cws_error *err)
{
    char *data = NULL;
    size_t len = 0;
    int r = cws_dirfile_read(dirfd, CWS_SB_SPEC, SPEC_MAX, &data, &len, err);
    if (r < 0)
        return r;
    struct cws_init_spec *s = calloc(1, sizeof(*s));
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    if (!s) {
        r = cws_error_set(err, CWS_E_NOMEM, NULL);
        goto out;
    }
    if (msgpack_unpack_next(&up, data, len, NULL) != MSGPACK_UNPACK_SUCCESS ||
        up.data.type != MSGPACK_OBJECT_MAP) {
        r = cws_error_set(err, CWS_E_PROTOCOL, "%s is not a msgpack map", CWS_SB_SPEC);
        goto out;
    }
    r = decode_spec(&up.data, s, err);
    if (r == 0) {
        *ret = s;
        s = NULL;
    }
out:
    cws_init_spec_free(s);
    msgpack_unpacked_destroy(&up);
    free(data);
    return r;
}
