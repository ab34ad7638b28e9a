/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* libFuzzer harnesses. Each defines LLVMFuzzerTestOneInput(); built with clang's
 * -fsanitize=fuzzer for `make fuzz`, and with fuzz-main.c (replays files given on
 * the command line) for the regression run in `make check`. A harness aborts on
 * any broken invariant, so a replayed corpus is a test even without sanitizers. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-event.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Aborts with a message (an invariant broke): the fuzzer reports it as a crash. */
#define FUZZ_ASSERT(expr)                                                                          \
        do {                                                                                       \
                if (!(expr))                                                                       \
                        fuzz_assert_failed(#expr, __FILE__, __LINE__);                             \
        } while (0)
_Noreturn void fuzz_assert_failed(const char *expr, const char *file, int line);

/* ---- the peer of a stream client (QMP, QGA), scripted by the fuzzer's bytes ----
 *
 * The input is the peer's byte stream, with a few control bytes:
 *   0x01          split point: deliver what was written so far, run the loop until idle
 *   0x02 X        client action X (the harness's: send a command, ...)
 *   0x03 N C      N * fill_unit bytes C, or for N > 0xf0 the whole fill budget
 *                 (over-long lines)
 *   0x04 X        second client action X (cancel, resync, detach, ...)
 *   0x05          the harness's current id as decimal digits (QGA: the sync id)
 *   0x06 B        the byte B itself (so 0x01..0x06 can be data too)
 * Everything else is data. The end of the input is a split point; then the harness
 * decides about EOF. Seeds are plain text with 0x01 between the messages. */

#define FUZZ_OP_SPLIT 0x01
#define FUZZ_OP_ACTION 0x02
#define FUZZ_OP_FILL 0x03
#define FUZZ_OP_ACTION2 0x04
#define FUZZ_OP_ID 0x05
#define FUZZ_OP_ESCAPE 0x06
#define FUZZ_FILL_UNIT (128U * 1024U)

typedef struct FuzzPeer FuzzPeer;
typedef struct FuzzPeerOps {
        void (*action)(FuzzPeer *p, uint8_t x, void *userdata);
        void (*action2)(FuzzPeer *p, uint8_t x, void *userdata);
        /* Writes the current id (decimal) into buf (size 32). */
        void (*id)(FuzzPeer *p, char *buf, void *userdata);
} FuzzPeerOps;

struct FuzzPeer {
        sd_event *event;
        int fd;       /* the peer's end; -1 once closed */
        bool broken;  /* the client closed: the rest is dropped */
        /* Fill bytes (0x03) allowed per input: enough for one over-long line, not so
         * much that the fuzzer spends its time copying filler. */
        size_t fill_budget;
        size_t fill_unit; /* at most FUZZ_FILL_UNIT; 0 is FUZZ_FILL_UNIT */
        /* What the client wrote, the last bytes of it (for ids it chose). */
        char *out;
        size_t out_len;
        uint64_t out_total;
};

/* Creates a connected pair; *ret_client_fd is the client's end. */
int fuzz_peer_open(FuzzPeer *p, sd_event *e, int *ret_client_fd);
/* Replaces the peer's end (re-attach); *ret_client_fd is the new client end. */
int fuzz_peer_reopen(FuzzPeer *p, int *ret_client_fd);
void fuzz_peer_close(FuzzPeer *p);
/* Reads what the client wrote, then runs the loop until nothing is pending (bounded). */
void fuzz_peer_step(FuzzPeer *p);
/* Writes all of buf, running the loop whenever the socket is full. */
void fuzz_peer_write(FuzzPeer *p, const void *buf, size_t n);
/* Interprets the script (see above). */
void fuzz_peer_run(FuzzPeer *p, const uint8_t *data, size_t size, const FuzzPeerOps *ops, void *userdata);
/* The last occurrence of prefix in the client's output followed by digits: 0 and the number. */
int fuzz_peer_find_number(FuzzPeer *p, const char *prefix, uint64_t *ret);
