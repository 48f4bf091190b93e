/*  =========================================================================
    kc_zpl - strict zero-copy ZPL (RFC 4) subset parser for key files.
    =========================================================================
*/
#include "kc_zpl.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

static bool
s_name_char (char c, bool first)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
        return true;
    }
    return !first && c && strchr ("$-_@.&+/", c) != NULL;
}

//  Parses one non-blank, non-comment line body (after indentation) into name
//  and optional value. Returns 0 or -1 with reason.
static int
s_parse_line (const char *p, const char *end, kc_zpl_entry_t *entry,
              const char **name, size_t *name_size, kc_why_t *why)
{
    const char *start = p;
    while (p < end && s_name_char (*p, p == start)) {
        p++;
    }
    *name = start;
    *name_size = (size_t) (p - start);
    if (*name_size == 0) {
        return kc_why (why, "expected a name, found '%c'", *p);
    }
    if (*name_size > KC_ZPL_NAME_MAX) {
        return kc_why (why, "name longer than %d characters", KC_ZPL_NAME_MAX);
    }
    while (p < end && *p == ' ') {
        p++;
    }
    entry->has_value = false;
    if (p < end && *p == '=') {
        p++;
        while (p < end && *p == ' ') {
            p++;
        }
        if (p < end && (*p == '"' || *p == '\'')) {
            char quote = *p++;
            const char *value = p;
            while (p < end && *p != quote) {
                p++;
            }
            if (p == end) {
                return kc_why (why, "unterminated quoted value");
            }
            entry->value = value;
            entry->value_size = (size_t) (p - value);
            p++;
        }
        else {
            const char *value = p;
            while (p < end && *p != ' ' && *p != '#' && *p != '"' && *p != '\'') {
                p++;
            }
            entry->value = value;
            entry->value_size = (size_t) (p - value);
        }
        if (entry->value_size > KC_ZPL_VALUE_MAX) {
            return kc_why (why, "value longer than %d characters", KC_ZPL_VALUE_MAX);
        }
        entry->has_value = true;
        while (p < end && *p == ' ') {
            p++;
        }
    }
    if (p < end && *p != '#') {
        return kc_why (why, "unexpected '%c' after %s", *p, entry->has_value ? "value" : "name");
    }
    return 0;
}

int
kc_zpl_parse (kc_zpl_t *self, const char *text, size_t size, kc_why_t *why)
{
    self->count = 0;
    if (size > KC_ZPL_TEXT_MAX) {
        return kc_why (why, "text is larger than %d bytes", KC_ZPL_TEXT_MAX);
    }
    if (memchr (text, 0, size)) {
        return kc_why (why, "text contains a NUL byte");
    }
    size_t stack [KC_ZPL_DEPTH_MAX];    //  path length at each level
    int depth = 0;                      //  levels open
    const char *p = text, *text_end = text + size;
    for (int line = 1; p < text_end; line++) {
        const char *end = memchr (p, '\n', (size_t) (text_end - p));
        const char *next = end ? end + 1 : text_end;
        if (!end) {
            end = text_end;
        }
        if (end > p && end [-1] == '\r') {
            end--;
        }
        const char *body = p;
        while (body < end && *body == ' ') {
            body++;
        }
        if (body < end && *body == '\t') {
            return kc_why (why, "line %d: tab in indentation", line);
        }
        if (body == end || *body == '#') {
            p = next;
            continue;
        }
        size_t spaces = (size_t) (body - p);
        if (spaces % 4) {
            return kc_why (why, "line %d: indentation is not a multiple of 4 spaces", line);
        }
        int level = (int) (spaces / 4);
        if (level > depth || level >= KC_ZPL_DEPTH_MAX) {
            return kc_why (why, "line %d: indented too deep", line);
        }
        if (self->count == KC_ZPL_ENTRIES_MAX) {
            return kc_why (why, "line %d: more than %d entries", line, KC_ZPL_ENTRIES_MAX);
        }
        kc_zpl_entry_t *entry = &self->entries [self->count];
        const char *name;
        size_t name_size;
        if (s_parse_line (body, end, entry, &name, &name_size, why)) {
            return kc_why_prefix (why, "line %d", line);
        }
        size_t prefix = level ? stack [level - 1] : 0;
        size_t length = prefix + (level ? 1 : 0) + name_size;
        if (length > KC_ZPL_PATH_MAX) {
            return kc_why (why, "line %d: path longer than %d characters", line, KC_ZPL_PATH_MAX);
        }
        if (level) {
            //  The parent's path is the prefix of the previous entry at level-1
            memcpy (entry->path, self->entries [self->count - 1].path, prefix);
            entry->path [prefix] = '/';
        }
        memcpy (entry->path + length - name_size, name, name_size);
        entry->path [length] = 0;
        stack [level] = length;
        depth = level + 1;
        self->count++;
        p = next;
    }
    return 0;
}

const kc_zpl_entry_t *
kc_zpl_get (const kc_zpl_t *self, const char *path)
{
    for (size_t i = 0; i < self->count; i++) {
        if (self->entries [i].has_value && KC_STREQ (self->entries [i].path, path)) {
            return &self->entries [i];
        }
    }
    return NULL;
}

void
kc_zpl_test (bool verbose)
{
    if (verbose) {
        printf (" * kc_zpl: ");
    }
    static kc_zpl_t zpl;
    kc_why_t why;
    const char *cert =
        "#   ****  Generated on 2026-11-25 18:56:03 by CZMQ  ****\n"
        "#   ZeroMQ CURVE **Secret** Certificate\n"
        "\n"
        "metadata\n"
        "    name = \"alice\"\n"
        "    role = db    # trailing comment\n"
        "curve\n"
        "    public-key = \".5cMJTR38AuEFijBeew0lX2x^ySJ]hI60Vs@qdKO\"\r\n"
        "    secret-key = 'Mqj(y(Wn#Uozk@axkWcUGO]>1lXQhx)D>ap>Zleq'\n";
    assert (kc_zpl_parse (&zpl, cert, strlen (cert), &why) == 0);
    assert (zpl.count == 6);
    const kc_zpl_entry_t *e = kc_zpl_get (&zpl, "curve/secret-key");
    assert (e && e->value_size == 40 && memcmp (e->value, "Mqj(", 4) == 0);
    e = kc_zpl_get (&zpl, "metadata/role");
    assert (e && e->value_size == 2 && memcmp (e->value, "db", 2) == 0);
    e = kc_zpl_get (&zpl, "curve/public-key");
    assert (e && e->value_size == 40);
    assert (kc_zpl_get (&zpl, "curve") == NULL);        //  a section has no value
    assert (kc_zpl_get (&zpl, "nothing") == NULL);

    //  Deeper nesting and returning to a shallower level
    const char *nested = "a\n    b\n        c = 1\n    d = 2\ne = 3\n";
    assert (kc_zpl_parse (&zpl, nested, strlen (nested), &why) == 0);
    assert (kc_zpl_get (&zpl, "a/b/c") && kc_zpl_get (&zpl, "a/d") && kc_zpl_get (&zpl, "e"));

    //  Rejections
    const char *bad [] = {
        "a\n   b = 1\n",           //  3 spaces
        "a\n        b = 1\n",      //  skipped a level
        "\ta = 1\n",               //  tab
        "a = \"open\n",            //  unterminated
        "a = 1 2\n",               //  junk after value
        "-a = 1\n",                //  bad first char
        "a = 1\n\tb = 2\n",
        NULL
    };
    for (int i = 0; bad [i]; i++) {
        assert (kc_zpl_parse (&zpl, bad [i], strlen (bad [i]), &why) == -1);
        assert (strncmp (why.text, "line ", 5) == 0);
    }
    assert (kc_zpl_parse (&zpl, "a\0b", 3, &why) == -1);

    //  Limits: entries, depth, name length
    char big [8192];
    size_t n = 0;
    for (int i = 0; i <= KC_ZPL_ENTRIES_MAX; i++) {
        n += (size_t) snprintf (big + n, sizeof big - n, "k%d = %d\n", i, i);
    }
    assert (kc_zpl_parse (&zpl, big, n, &why) == -1 && strstr (why.text, "entries"));
    n = 0;
    for (int i = 0; i <= KC_ZPL_DEPTH_MAX; i++) {
        n += (size_t) snprintf (big + n, sizeof big - n, "%*sx\n", i * 4, "");
    }
    assert (kc_zpl_parse (&zpl, big, n, &why) == -1 && strstr (why.text, "deep"));
    memset (big, 'n', KC_ZPL_NAME_MAX + 1);
    assert (kc_zpl_parse (&zpl, big, KC_ZPL_NAME_MAX + 1, &why) == -1);
    assert (kc_zpl_parse (&zpl, big, KC_ZPL_NAME_MAX, &why) == 0);
    if (verbose) {
        printf ("OK\n");
    }
}
