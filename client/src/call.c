/* Requests and notifications: packing msgpack-rpc messages into a connection's output queue. */
#include "internal.h"

int cwsc_call(cws_client *c, const char *method, const struct cwsc_op_type *type, void *state,
              cwsc_pack_fn pack, const void *ud, cws_op **ret_op, struct cws_error *err)
{
    cws_op *op = NULL;
    int r = cwsc_client_usable(c, err);
    if (r < 0) {
        if (type->free_state && state)
            type->free_state(state);
        return r;
    }
    r = cwsc_op_new(c, type, method, state, &op, err);
    if (r < 0)
        return r;

    size_t mark = cwsc_buf_size(&c->out);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &c->out, cwsc_buf_pack_write);
    r = cws_rpc_pack_request_head(&pk, op->msgid, method);
    if (r == 0)
        r = pack ? pack(&pk, ud) : (msgpack_pack_map(&pk, 0) == 0 ? 0 : -CWS_E_NOMEM);
    if (r < 0) {
        cwsc_buf_truncate(&c->out, mark);
        cwsc_op_unlink(op);
        cwsc_op_destroy(op);
        return cws_error_set(err, CWS_E_NOMEM, "cannot build the %s request", method);
    }
    cwsc_client_flush_some(c);
    *ret_op = op;
    return 0;
}

int cwsc_pack_notification(struct cwsc_buf *b, const char *method, cwsc_pack_fn pack,
                           const void *ud)
{
    size_t mark = cwsc_buf_size(b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, b, cwsc_buf_pack_write);
    int r = cws_rpc_pack_notification_head(&pk, method);
    if (r == 0)
        r = pack(&pk, ud);
    if (r < 0)
        cwsc_buf_truncate(b, mark);
    return r;
}

int cwsc_pack_op_note(msgpack_packer *pk, const void *ud)
{
    const struct cwsc_op_note *note = ud;
    size_t n = 1 + (note->has_data ? 1 : 0) + (note->has_size ? 2 : 0);
    if (msgpack_pack_map(pk, n) != 0 || cws_rpc_pack_kv_uint(pk, "id", note->id) < 0)
        return -CWS_E_NOMEM;
    if (note->has_data && cws_rpc_pack_kv_bin(pk, "data", note->data, note->len) < 0)
        return -CWS_E_NOMEM;
    if (note->has_size && (cws_rpc_pack_kv_uint(pk, "cols", note->cols) < 0 ||
                           cws_rpc_pack_kv_uint(pk, "rows", note->rows) < 0))
        return -CWS_E_NOMEM;
    return 0;
}

int cwsc_send_op_note(cws_client *c, const char *method, const struct cwsc_op_note *note)
{
    int r = cwsc_pack_notification(&c->out, method, cwsc_pack_op_note, note);
    if (r == 0)
        cwsc_client_flush_some(c);
    return r;
}
