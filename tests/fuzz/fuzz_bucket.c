/*  fuzz_bucket - the agent cache's key and name bucket parsers: validate,
    find, insert into arbitrary (possibly damaged) bucket bytes, and walk
    them as a name bucket. The first two input bytes choose the bucket.  */
#include "kc_all.h"
#include <sodium.h>

static uint8_t s_record [KC_RECORD_BYTES_MAX];
static size_t s_record_size;

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
    (void) argc;
    (void) argv;
    uint8_t directory [32], key [32];
    memset (directory, 0xd1, 32);
    memset (key, 0x12, 32);
    kc_record_spec_t spec = { .directory = directory, .key = key, .version = 3,
                              .status = KC_STATUS_ACTIVE, .name = "n" };
    kc_writer_t writer;
    kc_writer_init (&writer);
    if (kc_record_encode (&spec, &writer, NULL)) {
        return 1;
    }
    memcpy (s_record, writer.data, writer.size);
    s_record_size = writer.size;
    kc_writer_free (&writer);
    return 0;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (size < 2) {
        return 0;
    }
    uint32_t bucket = (uint32_t) data [0] << 8 | data [1];
    data += 2;
    size -= 2;
    uint8_t directory [32];
    memset (directory, 0xd1, 32);
    kc_why_t why;
    int rc = kc_bucket_validate (data, size, bucket, directory, &why);
    kc_bucket_entry_t entry;
    uint8_t key [32];
    memset (key, 0x12, 32);
    rc |= kc_bucket_find (data, size, key, &entry, &why);
    kc_reader_t reader;
    kc_record_t record;
    kc_reader_init (&reader, s_record, s_record_size);
    if (kc_record_decode (&reader, &record, &why) == 0) {
        kc_writer_t out;
        kc_writer_init (&out);
        rc |= kc_bucket_put (&out, data, size, 9, &record, &why);
        kc_writer_free (&out);
    }
    size_t offset = 0, name_size;
    const char *name;
    const uint8_t *name_key;
    while (kc_names_next (data, size, &offset, &name, &name_size, &name_key, &why) == 1) {
    }
    kc_writer_t names;
    kc_writer_init (&names);
    rc |= kc_names_update (&names, data, size, "web", 3, key, true, &why);
    kc_writer_free (&names);
    (void) rc;
    return 0;
}
