/*  =========================================================================
    kc_zmtp - ZMTP 3.0/3.1 greeting and framing. See kc_zmtp.h.
    =========================================================================
*/
#include "kc_zmtp.h"
#include "kc_wire.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

#define S_MAJOR_AT      10
#define S_MINOR_AT      11
#define S_MECHANISM_AT  12
#define S_AS_SERVER_AT  32

void
kc_zmtp_greeting (uint8_t greeting [static KC_ZMTP_GREETING_BYTES], const char *mechanism, bool as_server,
                  int minor)
{
    assert (mechanism && strlen (mechanism) <= KC_ZMTP_MECHANISM_MAX);
    memset (greeting, 0, KC_ZMTP_GREETING_BYTES);
    greeting [0] = 0xff;
    greeting [9] = 0x7f;
    greeting [S_MAJOR_AT] = 3;
    greeting [S_MINOR_AT] = (uint8_t) minor;
    memcpy (greeting + S_MECHANISM_AT, mechanism, strlen (mechanism));
    greeting [S_AS_SERVER_AT] = as_server;
}

int
kc_zmtp_greeting_check (const uint8_t *data, size_t size, const char *mechanism, int *minor, bool *as_server,
                        kc_why_t *why)
{
    assert (mechanism && strlen (mechanism) <= KC_ZMTP_MECHANISM_MAX);
    if (size >= 1 && data [0] != 0xff) {
        return kc_why (why, "ZMTP greeting starts with 0x%02x, not 0xff", data [0]);
    }
    //  Bit 0 of the signature's last byte set: ZMTP 2.0 or later (what
    //  libzmq checks; RFC 23 writes 0x7f)
    if (size >= KC_ZMTP_SIGNATURE_BYTES && !(data [9] & 0x01)) {
        return kc_why (why, "ZMTP greeting signature ends with 0x%02x: a ZMTP 1.0 peer", data [9]);
    }
    if (size > S_MAJOR_AT && data [S_MAJOR_AT] < 3) {
        return kc_why (why, "ZMTP version %u.x, not 3.x", data [S_MAJOR_AT]);
    }
    if (size < KC_ZMTP_GREETING_BYTES) {
        return 1;
    }
    char name [KC_ZMTP_MECHANISM_MAX + 1];
    memcpy (name, data + S_MECHANISM_AT, KC_ZMTP_MECHANISM_MAX);
    name [KC_ZMTP_MECHANISM_MAX] = 0;
    size_t length = strlen (name);
    for (size_t i = length; i < KC_ZMTP_MECHANISM_MAX; i++) {
        if (data [S_MECHANISM_AT + i]) {
            return kc_why (why, "ZMTP mechanism field is not a NUL-padded name");
        }
    }
    if (!KC_STREQ (name, mechanism)) {
        char shown [KC_WHY_BYTES / 2];
        kc_escape (name, length, shown, sizeof shown, 0);
        return kc_why (why, "ZMTP mechanism '%s', expected '%s'", shown, mechanism);
    }
    if (minor) {
        *minor = data [S_MINOR_AT];
    }
    if (as_server) {
        *as_server = data [S_AS_SERVER_AT] != 0;
    }
    return 0;
}

size_t
kc_zmtp_frame_header (uint8_t header [static KC_ZMTP_HEADER_MAX], int flags, uint64_t size)
{
    assert (!(flags & ~(KC_ZMTP_MORE | KC_ZMTP_COMMAND)));
    if (size <= KC_ZMTP_SHORT_MAX) {
        header [0] = (uint8_t) flags;
        header [1] = (uint8_t) size;
        return 2;
    }
    header [0] = (uint8_t) (flags | KC_ZMTP_LONG);
    kc_put_u64 (header + 1, size);
    return KC_ZMTP_HEADER_MAX;
}

int
kc_zmtp_frame_decode (const uint8_t *data, size_t size, size_t max, kc_zmtp_frame_t *frame, size_t *consumed,
                      size_t *needed, kc_why_t *why)
{
    *consumed = 0;
    *needed = 0;
    if (size < 1) {
        return 1;
    }
    int flags = data [0];
    if (flags & ~(KC_ZMTP_MORE | KC_ZMTP_LONG | KC_ZMTP_COMMAND)) {
        return kc_why (why, "ZMTP frame flags 0x%02x set reserved bits", (unsigned) flags);
    }
    if ((flags & KC_ZMTP_COMMAND) && (flags & KC_ZMTP_MORE)) {
        return kc_why (why, "ZMTP command frame with MORE set");
    }
    size_t header = flags & KC_ZMTP_LONG ? KC_ZMTP_HEADER_MAX : 2;
    if (size < header) {
        return 1;
    }
    uint64_t body = flags & KC_ZMTP_LONG ? kc_get_u64 (data + 1) : data [1];
    if (body > max) {
        return kc_why (why, "ZMTP frame of %llu bytes (at most %zu)", (unsigned long long) body, max);
    }
    *needed = header + (size_t) body;
    if (size - header < body) {
        return 1;
    }
    frame->flags = flags;
    frame->body = data + header;
    frame->size = (size_t) body;
    *consumed = *needed;
    return 0;
}

int
kc_zmtp_command (const uint8_t *body, size_t size, char name [static KC_ZMTP_COMMAND_NAME_MAX + 1],
                 const uint8_t **data, size_t *data_size, kc_why_t *why)
{
    if (size < 1 || body [0] == 0 || (size_t) body [0] + 1 > size) {
        return kc_why (why, "ZMTP command of %zu bytes has no whole name", size);
    }
    for (size_t i = 1; i <= body [0]; i++) {
        //  Command names are letters (RFC 37); anything else is refused
        if (!((body [i] >= 'A' && body [i] <= 'Z') || (body [i] >= 'a' && body [i] <= 'z'))) {
            return kc_why (why, "ZMTP command name holds byte 0x%02x", body [i]);
        }
    }
    memcpy (name, body + 1, body [0]);
    name [body [0]] = 0;
    *data = body + 1 + body [0];
    *data_size = size - 1 - body [0];
    return 0;
}

//  --- Self test -----------------------------------------------------------------

void
kc_zmtp_test (bool verbose)
{
    if (verbose) {
        printf (" * kc_zmtp: ");
    }
    kc_why_t why;
    uint8_t greeting [KC_ZMTP_GREETING_BYTES];
    int minor = -1;
    bool as_server = true;
    kc_zmtp_greeting (greeting, "CURVE", false, 1);
    //  Every prefix is consistent so far; the whole is accepted
    for (size_t size = 0; size < KC_ZMTP_GREETING_BYTES; size++) {
        assert (kc_zmtp_greeting_check (greeting, size, "CURVE", &minor, &as_server, &why) == 1);
    }
    assert (kc_zmtp_greeting_check (greeting, 64, "CURVE", &minor, &as_server, &why) == 0);
    assert (minor == 1 && !as_server);
    //  The as-server byte is reported, not judged; padding is anything
    greeting [32] = 1;
    greeting [3] = 0x55;
    assert (kc_zmtp_greeting_check (greeting, 64, "CURVE", &minor, &as_server, &why) == 0 && as_server);
    assert (kc_zmtp_greeting_check (greeting, 64, "NULL", NULL, NULL, &why) == -1 && strstr (why.text, "'CURVE'"));
    uint8_t bad [KC_ZMTP_GREETING_BYTES];
    memcpy (bad, greeting, sizeof bad);
    bad [0] = 0x01;
    assert (kc_zmtp_greeting_check (bad, 1, "CURVE", NULL, NULL, &why) == -1);
    memcpy (bad, greeting, sizeof bad);
    bad [9] = 0x7e;
    assert (kc_zmtp_greeting_check (bad, 10, "CURVE", NULL, NULL, &why) == -1 && strstr (why.text, "1.0"));
    memcpy (bad, greeting, sizeof bad);
    bad [10] = 2;
    assert (kc_zmtp_greeting_check (bad, 11, "CURVE", NULL, NULL, &why) == -1 && strstr (why.text, "2.x"));
    memcpy (bad, greeting, sizeof bad);
    bad [12 + 6] = 'X';                     //  after "CURVE\0"
    assert (kc_zmtp_greeting_check (bad, 64, "CURVE", NULL, NULL, &why) == -1 && strstr (why.text, "NUL-padded"));

    //  Frames: short up to 255, long above; every prefix asks for more
    static uint8_t stream [KC_ZMTP_HEADER_MAX + 300];
    static const size_t sizes [] = { 0, 1, 255, 256, 300 };
    for (size_t s = 0; s < sizeof sizes / sizeof sizes [0]; s++) {
        size_t header = kc_zmtp_frame_header (stream, KC_ZMTP_MORE, sizes [s]);
        assert (header == (sizes [s] <= 255 ? 2u : 9u));
        memset (stream + header, 0xab, sizes [s]);
        kc_zmtp_frame_t frame;
        size_t consumed, needed;
        for (size_t cut = 0; cut < header + sizes [s]; cut++) {
            assert (kc_zmtp_frame_decode (stream, cut, 1000, &frame, &consumed, &needed, &why) == 1);
            assert (consumed == 0 && (cut < header || needed == header + sizes [s]));
        }
        assert (kc_zmtp_frame_decode (stream, header + sizes [s], 1000, &frame, &consumed, &needed, &why) == 0);
        assert (consumed == header + sizes [s] && frame.size == sizes [s] && frame.body == stream + header);
        assert ((frame.flags & KC_ZMTP_MORE) && ((frame.flags & KC_ZMTP_LONG) != 0) == (sizes [s] > 255));
        assert (kc_zmtp_frame_decode (stream, header + sizes [s], sizes [s] ? sizes [s] - 1 : 0, &frame, &consumed,
                                      &needed, &why) == (sizes [s] ? -1 : 0));
    }
    kc_zmtp_frame_t frame;
    size_t consumed, needed;
    const uint8_t reserved [] = { 0x08, 0 }, command_more [] = { 0x05, 0 };
    assert (kc_zmtp_frame_decode (reserved, 2, 10, &frame, &consumed, &needed, &why) == -1);
    assert (kc_zmtp_frame_decode (command_more, 2, 10, &frame, &consumed, &needed, &why) == -1);
    //  A long frame claiming 2^64-1 bytes is refused, not awaited
    uint8_t huge [KC_ZMTP_HEADER_MAX] = { KC_ZMTP_LONG, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
    assert (kc_zmtp_frame_decode (huge, sizeof huge, 1 << 20, &frame, &consumed, &needed, &why) == -1);

    //  Commands: name and data
    char name [KC_ZMTP_COMMAND_NAME_MAX + 1];
    const uint8_t *data;
    size_t data_size;
    const uint8_t ping [] = "\x04PING\x00\x64" "ctx";
    assert (kc_zmtp_command (ping, sizeof ping - 1, name, &data, &data_size, &why) == 0);
    assert (KC_STREQ (name, "PING") && data_size == 5 && data == ping + 5);
    assert (kc_zmtp_command (ping, 4, name, &data, &data_size, &why) == -1);
    assert (kc_zmtp_command ((const uint8_t *) "\x02P\x01", 3, name, &data, &data_size, &why) == -1);
    assert (kc_zmtp_command ((const uint8_t *) "", 0, name, &data, &data_size, &why) == -1);
    if (verbose) {
        printf ("OK\n");
    }
}
