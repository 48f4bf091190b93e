/*  kc_certstore - reads a certificate directory with czmq's own zcertstore
    (what zauth uses) and prints, for each Z85 public key given, what the
    store holds for it: "KEY name=NAME META=VALUE..." or "KEY missing".
    Usage: kc_certstore CERTDIR KEY...  (stable czmq API only).  */
#include <czmq.h>

int
main (int argc, char *argv [])
{
    if (argc < 2) {
        fprintf (stderr, "usage: kc_certstore CERTDIR KEY...\n");
        return 2;
    }
    zcertstore_t *store = zcertstore_new (argv [1]);
    if (!store) {
        fprintf (stderr, "kc_certstore: cannot read '%s'\n", argv [1]);
        return 1;
    }
    for (int i = 2; i < argc; i++) {
        zcert_t *cert = zcertstore_lookup (store, argv [i]);
        if (!cert) {
            printf ("%s missing\n", argv [i]);
            continue;
        }
        printf ("%s", argv [i]);
        zlist_t *keys = zcert_meta_keys (cert);
        for (char *key = zlist_first (keys); key; key = zlist_next (keys)) {
            printf (" %s=%s", key, zcert_meta (cert, key));
        }
        zlist_destroy (&keys);
        printf ("\n");
    }
    zcertstore_destroy (&store);
    return 0;
}
