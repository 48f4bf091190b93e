/*  fuzz_group - the cluster's Raft entry decoder (kc_group): whatever it
    accepts must lie inside the input, follow its base sequence and encode
    back to exactly the same bytes.  */
#include "kc_all.h"
#include <stdlib.h>
#include <string.h>

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    kc_group_t *group = malloc (sizeof *group);
    if (!group) {
        return 0;
    }
    kc_why_t why;
    if (kc_group_decode (data, size, group, &why) == 0) {
        for (size_t i = 0; i < group->count; i++) {
            const kc_group_item_t *item = &group->items [i];
            if (item->data < data || item->data + item->size > data + size
            ||  item->seq != group->base_seq + 1 + i) {
                abort ();
            }
        }
        size_t back_size;
        uint8_t *back = kc_group_encode (group, &back_size, &why);
        if (!back || back_size != size || memcmp (back, data, size)) {
            abort ();
        }
        free (back);
    }
    free (group);
    return 0;
}
