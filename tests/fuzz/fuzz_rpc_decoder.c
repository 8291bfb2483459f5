/* Fuzz the msgpack-rpc decoder: arbitrary bytes in arbitrary chunks. Every message it yields
 * must be within the limit, survive the params accessors, and re-encode to an equal value. */
#include <stdlib.h>
#include <string.h>

#include "rpc_decoder.h"
#include "rpc_encode.h"
#include "rpc_params.h"

#define LIMIT 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void poke_params(const msgpack_object *params)
{
    for (uint32_t i = 0; i < params->via.map.size; i++) {
        const msgpack_object *k = &params->via.map.ptr[i].key;
        if (k->type != MSGPACK_OBJECT_STR || k->via.str.size > 32 ||
            memchr(k->via.str.ptr, 0, k->via.str.size))
            continue;
        char key[33];
        memcpy(key, k->via.str.ptr, k->via.str.size);
        key[k->via.str.size] = '\0';
        char *s = NULL;
        char **v = NULL;
        size_t n;
        double d;
        int64_t i64;
        if (cws_rpc_param_str(params, key, &s, NULL) == 1)
            free(s);
        if (cws_rpc_param_strv_array(params, key, &v, &n, NULL) == 1)
            cws_strv_free(v);
        cws_rpc_param_nonneg(params, key, &d, NULL);
        cws_rpc_param_int(params, key, -5, 5, &i64, NULL);
    }
}

/* Pack obj; abort if msgpack-c cannot. The caller destroys *sb. */
static void pack_object(msgpack_sbuffer *sb, msgpack_object obj)
{
    msgpack_packer pk;
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    if (msgpack_pack_object(&pk, obj) != 0)
        abort();
}

/* Re-encoding is stable: pack, unpack, pack again gives the same bytes. Bytes rather than
 * msgpack_object_equal, because a NaN is not equal to itself. */
static void check_reencodes(const struct cws_rpc_msg *m)
{
    msgpack_sbuffer first, second;
    msgpack_unpacked u;
    pack_object(&first, m->unpacked.data);
    msgpack_unpacked_init(&u);
    if (msgpack_unpack_next(&u, first.data, first.size, NULL) != MSGPACK_UNPACK_SUCCESS)
        abort();
    pack_object(&second, u.data);
    if (first.size != second.size || memcmp(first.data, second.data, first.size) != 0)
        abort();
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&first);
    msgpack_sbuffer_destroy(&second);
}

static void check_message(const struct cws_rpc_msg *m)
{
    if (m->size > LIMIT)
        abort();
    if (m->type != CWS_RPC_RESPONSE) {
        if (!m->method || !m->method[0] || m->params->type != MSGPACK_OBJECT_MAP)
            abort();
        poke_params(m->params);
    } else if (m->error) {
        struct cws_error e;
        cws_rpc_error_from_object(m->error, &e, NULL);
    }
    check_reencodes(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cws_rpc_decoder *d;
    if (size == 0 || cws_rpc_decoder_new(LIMIT, &d) < 0)
        return 0;
    size_t chunk = 1 + data[0] % 97;
    for (size_t off = 1; off < size && !cws_rpc_decoder_broken(d); off += chunk) {
        size_t n = size - off < chunk ? size - off : chunk;
        if (cws_rpc_decoder_feed(d, data + off, n, NULL) < 0)
            break;
        for (;;) {
            struct cws_rpc_msg *m = NULL;
            int r = cws_rpc_decoder_next(d, &m, NULL);
            if (r == 1) {
                check_message(m);
                cws_rpc_msg_free(m);
                continue;
            }
            if (r == 0 || cws_rpc_decoder_broken(d))
                break;
            if (r != -CWS_E_PROTOCOL)
                abort(); /* only protocol errors leave the stream usable */
        }
    }
    cws_rpc_decoder_free(d);
    return 0;
}
