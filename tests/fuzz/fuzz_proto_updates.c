/*  fuzz_proto_updates - the decoder for what the agent receives on the update channel.  */
#include "fuzz_proto.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    return s_fuzz_channel (data, size, KC_CHANNEL_UPDATES);
}
