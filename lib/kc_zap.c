/*  =========================================================================
    kc_zap - ZAP requests, replies and keyclone's decision.
    =========================================================================
*/
#include "kc_zap.h"
#include "kc_z85.h"

static void
s_status (kc_zap_reply_t *reply, int status, const char *format, ...) KC_PRINTF (3, 4);

static void
s_status (kc_zap_reply_t *reply, int status, const char *format, ...)
{
    memset (reply, 0, sizeof *reply);
    reply->status = status;
    char raw [sizeof reply->text];
    va_list args;
    va_start (args, format);
    int n = vsnprintf (raw, sizeof raw, format, args);
    va_end (args);
    //  The text quotes fields of the request: escape them (log, reply)
    kc_escape (raw, n < 0 ? 0 : (size_t) n < sizeof raw ? (size_t) n : sizeof raw - 1,
               reply->text, sizeof reply->text, 0);
}

//  Copies a frame into a C string field; -1 if too long or holds a NUL.
static int
s_field (zframe_t *frame, char *out)
{
    size_t size = zframe_size (frame);
    if (size > KC_ZAP_FIELD_MAX || memchr (zframe_data (frame), 0, size)) {
        return -1;
    }
    memcpy (out, zframe_data (frame), size);
    out [size] = 0;
    return 0;
}

int
kc_zap_parse (zmsg_t *request, kc_zap_request_t *out, kc_zap_reply_t *reply, kc_why_t *why)
{
    memset (out, 0, sizeof *out);
    size_t count = zmsg_size (request);
    zframe_t *frames [7] = { NULL };
    zframe_t *frame = zmsg_first (request);
    for (size_t i = 0; i < 7 && frame; i++, frame = zmsg_next (request)) {
        frames [i] = frame;
    }
    if (frames [1] && zframe_size (frames [1]) <= KC_ZAP_FIELD_MAX) {
        out->request_id = zframe_data (frames [1]);
        out->request_id_size = zframe_size (frames [1]);
    }
    if (count < 6) {
        s_status (reply, 500, "malformed ZAP request: %zu frames", count);
        return kc_why (why, "%s", reply->text);
    }
    if (zframe_size (frames [0]) != 3 || memcmp (zframe_data (frames [0]), KC_ZAP_VERSION, 3)) {
        s_status (reply, 500, "unsupported ZAP version");
        return kc_why (why, "%s", reply->text);
    }
    if (!out->request_id || s_field (frames [2], out->domain) || s_field (frames [3], out->address)
    ||  s_field (frames [5], out->mechanism)) {
        s_status (reply, 500, "malformed ZAP request: a field is too long");
        return kc_why (why, "%s", reply->text);
    }
    if (!KC_STREQ (out->mechanism, "CURVE")) {
        s_status (reply, 400, "keyclone accepts CURVE clients only, not %.20s", out->mechanism);
        return kc_why (why, "%s", reply->text);
    }
    if (count != 7 || zframe_size (frames [6]) != KC_KEY_BYTES) {
        s_status (reply, 400, "malformed CURVE credentials: expected one 32-byte key");
        return kc_why (why, "%s", reply->text);
    }
    out->key = zframe_data (frames [6]);
    return 0;
}

bool
kc_zap_tags_cover (const char *tags, const char *required)
{
    if (!required) {
        return true;
    }
    const char *p = required;
    while (*p) {
        size_t length = strcspn (p, ",");
        bool found = false;
        for (const char *t = tags; *t && !found; ) {
            size_t size = strcspn (t, ",");
            found = size == length && memcmp (t, p, length) == 0;
            t += size + (t [size] == ',');
        }
        if (length && !found) {
            return false;
        }
        p += length + (p [length] == ',');
    }
    return true;
}

//  Appends one ZMTP property (name-size, name, value-size, value).
static void
s_property (kc_zap_reply_t *reply, const char *name, const char *value)
{
    size_t name_size = strlen (name), value_size = strlen (value);
    if (reply->metadata_size + 1 + name_size + 4 + value_size > KC_ZAP_METADATA_MAX) {
        return;
    }
    uint8_t *p = reply->metadata + reply->metadata_size;
    *p++ = (uint8_t) name_size;
    memcpy (p, name, name_size);
    p += name_size;
    kc_put_u32 (p, (uint32_t) value_size);
    memcpy (p + 4, value, value_size);
    reply->metadata_size += 1 + name_size + 4 + value_size;
}

void
kc_zap_decide (const kc_zap_request_t *request, const kc_lookup_entry_t *entry, bool stale_deny,
               const char *required_tags, kc_zap_reply_t *reply)
{
    char fp [KC_FINGERPRINT_CHARS + 1], z85 [KC_Z85_KEY_CHARS + 1];
    kc_fingerprint (request->key, fp);
    if (entry->verdict != KC_VERDICT_TRUSTED) {
        s_status (reply, 400, "key %s is %s", fp,
                  entry->verdict == KC_VERDICT_UNKNOWN ? "not in the keyclone directory"
                                                       : kc_verdict_name (entry->verdict));
        return;
    }
    if (stale_deny) {
        s_status (reply, 400, "keyclone directory is stale and the policy is fail-closed");
        return;
    }
    if (required_tags && *required_tags && !kc_zap_tags_cover (entry->tags, required_tags)) {
        s_status (reply, 400, "key %s (%s) lacks tags %.100s required for domain '%.40s'", fp,
                  entry->name, required_tags, request->domain);
        return;
    }
    s_status (reply, 200, "OK");
    snprintf (reply->user, sizeof reply->user, "%s", entry->name);
    s_property (reply, KC_ZAP_PROPERTY_KEY, kc_z85_encode (request->key, KC_KEY_BYTES, z85));
    s_property (reply, KC_ZAP_PROPERTY_NAME, entry->name);
    s_property (reply, KC_ZAP_PROPERTY_TAGS, entry->tags);
}

zmsg_t *
kc_zap_reply (const uint8_t *request_id, size_t request_id_size, const kc_zap_reply_t *reply)
{
    char status [8];
    snprintf (status, sizeof status, "%03d", reply->status);
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, KC_ZAP_VERSION);
    zmsg_addmem (msg, request_id, request_id ? request_id_size : 0);
    zmsg_addstr (msg, status);
    zmsg_addstr (msg, reply->text);
    zmsg_addstr (msg, reply->status == 200 ? reply->user : "");
    zmsg_addmem (msg, reply->metadata, reply->status == 200 ? reply->metadata_size : 0);
    return msg;
}

void
kc_zap_test (bool verbose)
{
    if (verbose) {
        printf (" * kc_zap: ");
    }
    kc_zap_request_t request;
    kc_zap_reply_t reply;
    kc_why_t why;
    uint8_t key [32];
    memset (key, 0x3f, 32);
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, "1.0");
    zmsg_addstr (msg, "7");
    zmsg_addstr (msg, "db");
    zmsg_addstr (msg, "127.0.0.1");
    zmsg_addstr (msg, "");
    zmsg_addstr (msg, "CURVE");
    zmsg_addmem (msg, key, 32);
    assert (kc_zap_parse (msg, &request, &reply, &why) == 0);
    assert (KC_STREQ (request.domain, "db") && memcmp (request.key, key, 32) == 0);

    kc_lookup_entry_t entry = { .verdict = KC_VERDICT_TRUSTED, .status = KC_STATUS_ACTIVE };
    snprintf (entry.name, sizeof entry.name, "db-1");
    snprintf (entry.tags, sizeof entry.tags, "dc=eu,role=db");
    kc_zap_decide (&request, &entry, false, "role=db", &reply);
    assert (reply.status == 200 && KC_STREQ (reply.user, "db-1") && reply.metadata_size > 60);
    zmsg_t *out = kc_zap_reply (request.request_id, request.request_id_size, &reply);
    assert (zmsg_size (out) == 6 && zframe_streq (zmsg_first (out), "1.0"));
    assert (zframe_streq (zmsg_next (out), "7") && zframe_streq (zmsg_next (out), "200"));
    zmsg_destroy (&out);
    //  Policy, staleness, verdicts
    kc_zap_decide (&request, &entry, false, "role=web", &reply);
    assert (reply.status == 400 && strstr (reply.text, "lacks tags role=web"));
    kc_zap_decide (&request, &entry, true, NULL, &reply);
    assert (reply.status == 400 && strstr (reply.text, "stale"));
    entry.verdict = KC_VERDICT_REVOKED;
    kc_zap_decide (&request, &entry, false, NULL, &reply);
    assert (reply.status == 400 && strstr (reply.text, "3F3F3F3F is revoked"));
    entry.verdict = KC_VERDICT_UNKNOWN;
    kc_zap_decide (&request, &entry, false, NULL, &reply);
    assert (reply.status == 400 && strstr (reply.text, "not in the keyclone directory"));
    assert (kc_zap_tags_cover ("a,b,c", "c,a") && !kc_zap_tags_cover ("a,bc", "b"));
    assert (kc_zap_tags_cover ("", "") && kc_zap_tags_cover ("x", NULL));

    //  Malformed: short key, wrong mechanism, wrong version, too few frames
    zframe_t *last = zmsg_last (msg);
    zframe_reset (last, key, 31);
    assert (kc_zap_parse (msg, &request, &reply, &why) == -1 && reply.status == 400);
    zframe_t *mechanism = zmsg_first (msg);
    for (int i = 0; i < 5; i++) {
        mechanism = zmsg_next (msg);
    }
    zframe_reset (mechanism, "PLAIN", 5);
    assert (kc_zap_parse (msg, &request, &reply, &why) == -1 && strstr (reply.text, "CURVE"));
    zframe_reset (zmsg_first (msg), "2.0", 3);
    assert (kc_zap_parse (msg, &request, &reply, &why) == -1 && reply.status == 500);
    assert (request.request_id && request.request_id_size == 1);
    zmsg_destroy (&msg);
    msg = zmsg_new ();
    zmsg_addstr (msg, "1.0");
    assert (kc_zap_parse (msg, &request, &reply, &why) == -1 && strstr (reply.text, "1 frames"));
    zmsg_destroy (&msg);
    if (verbose) {
        printf ("OK\n");
    }
}
