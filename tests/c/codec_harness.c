/* Drives the shim's wire format (shim/codec.c) for tests/test_intercept_protocol.py.
 *   decode: stdin holds frames, each preceded by its u32 size; prints one line each:
 *           "ERR" or "op argc" followed by " i:<int>" / " b:<hex>" per argument.
 *   encode: stdin holds lines "op i:<int> b:<hex> ..."; prints each frame in hex. */
#include "../../shim/objmount.h"

#include <inttypes.h>

static void decode_all(void)
{
    static char buf[OM_MAX_FRAME + 16];
    uint32_t n;
    while (fread(&n, 4, 1, stdin) == 1) {
        struct om_msg m;
        if (n > sizeof buf || fread(buf, 1, n, stdin) != n)
            return;
        memset(&m, 0, sizeof m);
        if (om_decode(&m, buf, n) < 0) {
            printf("ERR\n");
            continue;
        }
        printf("%d %d", m.op, m.argc);
        for (int i = 0; i < m.argc; i++) {
            if (!m.args[i].is_bytes) {
                printf(" i:%" PRId64, m.args[i].i);
                continue;
            }
            printf(" b:");
            for (uint32_t k = 0; k < m.args[i].len; k++)
                printf("%02x", (unsigned char)m.args[i].b[k]);
        }
        printf("\n");
    }
}

static void encode_all(void)
{
    static char line[4 * OM_MAX_FRAME], out[OM_MAX_FRAME], data[OM_MAX_FRAME];
    while (fgets(line, sizeof line, stdin)) {
        struct om_arg args[OM_MAX_ARGS + 1];
        char *tok = strtok(line, " \n"), *d = data;
        int op, n = 0, len;
        if (!tok)
            continue;
        op = atoi(tok);
        while ((tok = strtok(NULL, " \n")) && n <= OM_MAX_ARGS) {
            memset(&args[n], 0, sizeof args[n]);
            if (tok[0] == 'i') {
                args[n].i = strtoll(tok + 2, NULL, 10);
            } else {
                size_t hex = strlen(tok + 2) / 2;
                args[n].is_bytes = 1;
                args[n].b = d;
                args[n].len = (uint32_t)hex;
                for (size_t k = 0; k < hex; k++) {
                    unsigned v;
                    sscanf(tok + 2 + 2 * k, "%2x", &v);
                    *d++ = (char)v;
                }
            }
            n++;
        }
        len = om_encode(out, sizeof out, op, args, n);
        if (len < 0) {
            printf("ERR\n");
            continue;
        }
        for (int k = 0; k < len; k++)
            printf("%02x", (unsigned char)out[k]);
        printf("\n");
    }
}

int main(int argc, char **argv)
{
    if (argc == 2 && !strcmp(argv[1], "decode"))
        decode_all();
    else if (argc == 2 && !strcmp(argv[1], "encode"))
        encode_all();
    else
        return 2;
    return 0;
}
