// cjose (JWK import, JWS verification) and jansson, its JSON library (the claims). Only
// GatewayJWT imports this module.
#include <cjose/cjose.h>
#include <jansson.h>
