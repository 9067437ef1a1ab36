// libnghttp2 (Debian libnghttp2-dev, 1.52.0-1+deb12u3 or later): only GatewayHTTP2 imports it.
#include <nghttp2/nghttp2.h>
