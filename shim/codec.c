/* The shim <-> daemon wire format (src/objmount/frontends/intercept/protocol.py):
 *   u32 body length | u16 op | u16 fd count | u16 arg count | args
 *   arg: 'i' i64 | 'b' u32 length, bytes        (little endian)
 * Kept apart from the rest of the shim so that tests can drive it alone. */
#include "objmount.h"

int om_encode(char *buf, size_t cap, int op, const struct om_arg *args, int n)
{
    size_t pos = 10;
    uint16_t hdr[3] = {(uint16_t)op, 0, (uint16_t)n};
    uint32_t len;
    if (cap < 10 || n < 0 || n > OM_MAX_ARGS)
        return -1;
    memcpy(buf + 4, hdr, 6);
    for (int i = 0; i < n; i++) {
        if (!args[i].is_bytes) {
            if (cap - pos < 9)
                return -1;
            buf[pos] = 'i';
            memcpy(buf + pos + 1, &args[i].i, 8);
            pos += 9;
        } else {
            uint32_t l = args[i].len;
            if (cap - pos < 5 || cap - pos - 5 < l)
                return -1;
            buf[pos] = 'b';
            memcpy(buf + pos + 1, &l, 4);
            memcpy(buf + pos + 5, args[i].b, l);
            pos += 5 + l;
        }
    }
    if (pos > OM_MAX_FRAME)
        return -1;
    len = (uint32_t)(pos - 4);
    memcpy(buf, &len, 4);
    return (int)pos;
}

/* One frame, exactly n bytes; args point into buf. -1 on anything malformed. */
int om_decode(struct om_msg *m, const char *buf, size_t n)
{
    uint32_t len;
    uint16_t hdr[3];
    size_t pos = 10;
    if (n < 10 || n > OM_MAX_FRAME)
        return -1;
    memcpy(&len, buf, 4);
    memcpy(hdr, buf + 4, 6);
    if ((size_t)len + 4 != n || hdr[1] > OM_MAX_FDS || hdr[2] > OM_MAX_ARGS)
        return -1;
    m->op = hdr[0];
    m->argc = hdr[2];
    for (int i = 0; i < m->argc; i++) {
        struct om_arg *a = &m->args[i];
        if (pos >= n)
            return -1;
        if (buf[pos] == 'i') {
            if (n - pos < 9)
                return -1;
            a->is_bytes = 0;
            memcpy(&a->i, buf + pos + 1, 8);
            pos += 9;
        } else if (buf[pos] == 'b') {
            uint32_t l;
            if (n - pos < 5)
                return -1;
            memcpy(&l, buf + pos + 1, 4);
            if (n - pos - 5 < l)
                return -1;
            a->is_bytes = 1;
            a->b = buf + pos + 5;
            a->len = l;
            pos += 5 + l;
        } else {
            return -1;
        }
    }
    return pos == n ? 0 : -1;
}
