/*  fuzz_proto_submit_server - the decoder for what the server receives on the submission channel.  */
#include "fuzz_proto.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    return s_fuzz_channel (data, size, KC_CHANNEL_SUBMIT_SERVER);
}
