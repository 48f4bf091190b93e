/*  fuzz_record - the record decoder. Any input must be refused or decode to a
    record whose canonical re-encoding is exactly the input (one encoding).  */
#include "kc_all.h"
#include <stdlib.h>
#include <string.h>

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    kc_reader_t reader;
    kc_record_t record;
    kc_reader_init (&reader, data, size);
    if (kc_record_decode (&reader, &record, NULL) || kc_reader_left (&reader)) {
        return 0;
    }
    char name [KC_RECORD_NAME_MAX + 1], reason [KC_RECORD_REASON_MAX + 1];
    char tag_text [KC_RECORD_TAGS_MAX][KC_RECORD_TAG_MAX + 1];
    const char *tags [KC_RECORD_TAGS_MAX];
    const uint8_t *p = record.tags;
    for (int i = 0; i < record.tag_count; i++) {
        memcpy (tag_text [i], p + 1, *p);
        tag_text [i][*p] = 0;
        tags [i] = tag_text [i];
        p += 1 + *p;
    }
    memcpy (reason, record.reason, record.reason_size);
    reason [record.reason_size] = 0;
    kc_record_spec_t spec = {
        .directory = record.directory, .key = record.key, .version = record.version,
        .status = (kc_status_t) record.status, .not_before = record.not_before,
        .not_after = record.not_after, .name = kc_record_name (&record, name),
        .tags = tags, .tag_count = record.tag_count, .reason = reason
    };
    kc_writer_t writer;
    kc_writer_init (&writer);
    if (kc_record_encode (&spec, &writer, NULL) || writer.size != size
    ||  memcmp (writer.data, data, size)) {
        abort ();                       //  decoded but not canonical: a bug
    }
    kc_writer_free (&writer);
    return 0;
}
