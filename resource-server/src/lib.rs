//! For APIs that accept Writ tokens: JWT/JWKS verification, the revocation
//! consumer and an axum extractor. Filled in by the revocation-stream issue;
//! it will depend on nothing of Writ's but shared wire types.
