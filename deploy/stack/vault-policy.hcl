# The policy of outlookd's own Vault identity (AppRole "outlookd"). The service
# never uses the root token: it may only manage the secrets under its own
# prefix of the KV v2 mount and use its own transit key.

# Tokens and secrets of each connection: secret/outlookd/<...>.
path "secret/data/outlookd/*" {
  capabilities = ["create", "read", "update", "delete"]
}

# Reading versions (for check-and-set), listing, and purging every version.
path "secret/metadata/outlookd/*" {
  capabilities = ["read", "list", "delete"]
}

path "secret/metadata/outlookd" {
  capabilities = ["list"]
}

# Encryption as a service with the "outlookd" key only.
path "transit/encrypt/outlookd" {
  capabilities = ["update"]
}

path "transit/decrypt/outlookd" {
  capabilities = ["update"]
}
