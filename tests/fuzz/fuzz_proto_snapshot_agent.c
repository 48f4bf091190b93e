/*  fuzz_proto_snapshot_agent - the decoder for what the agent receives on the snapshot channel.  */
#include "fuzz_proto.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    return s_fuzz_channel (data, size, KC_CHANNEL_SNAPSHOT_AGENT);
}
