/* Only the hooks leave the library; everything else is hidden
 * (-fvisibility=hidden). */
#ifndef NESTLS_EXPORT_H
#define NESTLS_EXPORT_H
#define NL_EXPORT __attribute__((visibility("default")))
#endif
