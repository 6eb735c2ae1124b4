/*
 * kassa_device_acl: a Mosquitto 2.0 plugin for the devices' listener.
 *
 * Mosquitto's acl_file checks only what is published and delivered; it grants every
 * SUBSCRIBE. A device could therefore join the cloud's shared subscription
 * ($share/ingest/kassa/v1/dev/+/up/#) and be handed its turn of every terminal's messages,
 * which the delivery check then drops: the worker never sees them. And client ids are global
 * across listeners, so a device whose id were a worker's client id would disconnect that
 * worker at CONNECT, before any ACL is asked. This plugin, for the listener it is loaded on:
 *
 *   - authenticates at CONNECT (the listener does not set use_identity_as_username): the
 *     certificate's CN must be a kassa device id (broker/contract/topics.py: 1-64 of
 *     A-Z a-z 0-9 . _ -, first a letter or digit, not starting with "kassa-", which the cloud's
 *     identities use) and the username sent must equal it; use_username_as_clientid then makes
 *     it the client id. Anything else is refused before Mosquitto looks at the client id, so no
 *     certificate of the device CA can take over a cloud client id, and a CN such as "+" can
 *     never widen an acl_file pattern;
 *   - SUBSCRIBE only to filters under kassa/v1/dev/<own id>/down/ (so no $share group, no
 *     wildcard in the device level, nothing of another device); UNSUBSCRIBE is always allowed;
 *   - a client whose certificate serial is on the CRL (plugin_opt_crl_file) is refused every
 *     access at once. The listener's `crlfile` refuses the TLS handshake of new connections;
 *     this covers a revoked device still connected when the broker re-read the CRL (SIGHUP).
 *     The CRL is taken only if the device CA (plugin_opt_ca_file) signed it.
 *
 * Options: plugin_opt_ca_file PATH (required), plugin_opt_crl_file PATH (optional; the broker
 * starts only if both read). Build: see broker/device_acl_plugin.py.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#define TOPIC_PREFIX "kassa/v1/dev/"
#define DOWN "/down/"
#define DEVICE_ID_MAX 64
#define RESERVED_PREFIX "kassa-"

static mosquitto_plugin_id_t *plugin_id;
static char *crl_path;
static char *ca_path;
static X509 *device_ca;
static X509_CRL *crl;
static int revoked_count; /* entries in crl: with none, no certificate needs looking up */

/* The protocol's device id rule: 1-64 of A-Z a-z 0-9 . _ -, starting with a letter or digit,
 * and not the cloud's reserved prefix (any case). */
static bool valid_device_id(const char *id)
{
	size_t len = strlen(id);
	if(len == 0 || len > DEVICE_ID_MAX) return false;
	if(strncasecmp(id, RESERVED_PREFIX, strlen(RESERVED_PREFIX)) == 0) return false;
	for(size_t i = 0; i < len; i++){
		char c = id[i];
		bool alnum = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
		if(!alnum && (i == 0 || (c != '.' && c != '_' && c != '-'))) return false;
	}
	return true;
}

static bool own_down_filter(const char *id, const char *filter)
{
	size_t prefix = strlen(TOPIC_PREFIX), id_len = strlen(id), down = strlen(DOWN);
	return strncmp(filter, TOPIC_PREFIX, prefix) == 0
		&& strncmp(filter + prefix, id, id_len) == 0
		&& strncmp(filter + prefix + id_len, DOWN, down) == 0
		&& filter[prefix + id_len + down] != '\0';
}

static X509 *read_certificate(const char *path)
{
	FILE *file = fopen(path, "r");
	if(file == NULL) return NULL;
	X509 *certificate = PEM_read_X509(file, NULL, NULL, NULL);
	fclose(file);
	return certificate;
}

/* Load the CRL; on failure keep the one we had (a broken or foreign file must not un-revoke
 * anyone, nor revoke anyone). */
static void load_crl(void)
{
	if(crl_path == NULL) return;
	FILE *file = fopen(crl_path, "r");
	if(file == NULL){
		mosquitto_log_printf(MOSQ_LOG_ERR, "kassa_device_acl: cannot open CRL %s; keeping the previous one", crl_path);
		return;
	}
	X509_CRL *fresh = PEM_read_X509_CRL(file, NULL, NULL, NULL);
	fclose(file);
	if(fresh == NULL){
		mosquitto_log_printf(MOSQ_LOG_ERR, "kassa_device_acl: %s is not a PEM CRL; keeping the previous one", crl_path);
		return;
	}
	EVP_PKEY *ca_key = X509_get0_pubkey(device_ca);
	if(X509_NAME_cmp(X509_CRL_get_issuer(fresh), X509_get_subject_name(device_ca)) != 0
			|| ca_key == NULL || X509_CRL_verify(fresh, ca_key) != 1){
		mosquitto_log_printf(MOSQ_LOG_ERR, "kassa_device_acl: %s is not signed by the device CA %s; keeping the previous one",
				crl_path, ca_path);
		X509_CRL_free(fresh);
		return;
	}
	if(crl) X509_CRL_free(crl);
	crl = fresh;
	STACK_OF(X509_REVOKED) *revoked = X509_CRL_get_REVOKED(crl);
	revoked_count = revoked ? sk_X509_REVOKED_num(revoked) : 0;
	mosquitto_log_printf(MOSQ_LOG_NOTICE, "kassa_device_acl: CRL %s loaded, %d revoked certificate(s)",
			crl_path, revoked_count);
}

static bool serial_revoked(X509 *certificate)
{
	X509_REVOKED *entry = NULL;
	return crl != NULL && revoked_count > 0 && X509_CRL_get0_by_serial(crl, &entry, (ASN1_INTEGER *)X509_get0_serialNumber(certificate)) == 1;
}

static bool revoked_certificate(struct mosquitto *client)
{
	if(revoked_count == 0) return false; /* every publish and delivery asks: skip the certificate */
	X509 *certificate = mosquitto_client_certificate(client);
	/* None when the connection is already gone (a will being published): the listener's
	 * require_certificate let nobody in without one, and a will only reports the device's own
	 * status. */
	if(certificate == NULL) return false;
	bool found = serial_revoked(certificate);
	X509_free(certificate);
	return found;
}

/* The certificate's one CN as UTF-8 into `out` (at most DEVICE_ID_MAX bytes); false if it has
 * none, several, or a longer one. */
static bool certificate_cn(X509 *certificate, char out[DEVICE_ID_MAX + 1])
{
	X509_NAME *subject = X509_get_subject_name(certificate);
	int index = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
	if(index < 0 || X509_NAME_get_index_by_NID(subject, NID_commonName, index) >= 0) return false;
	unsigned char *utf8 = NULL;
	int len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, index)));
	bool fits = len > 0 && len <= DEVICE_ID_MAX && memchr(utf8, '\0', (size_t)len) == NULL;
	if(fits){
		memcpy(out, utf8, (size_t)len);
		out[len] = '\0';
	}
	OPENSSL_free(utf8);
	return fits;
}

static int basic_auth(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_basic_auth *ed = event_data;
	(void)event;
	(void)userdata;
	X509 *certificate = mosquitto_client_certificate(ed->client);
	if(certificate == NULL) return MOSQ_ERR_AUTH;
	char cn[DEVICE_ID_MAX + 1];
	bool named = certificate_cn(certificate, cn);
	bool revoked = serial_revoked(certificate);
	X509_free(certificate);
	if(!named || !valid_device_id(cn)){
		mosquitto_log_printf(MOSQ_LOG_NOTICE, "kassa_device_acl: refused a connection: the certificate's CN is not a device id");
		return MOSQ_ERR_AUTH;
	}
	if(ed->username == NULL || strcmp(ed->username, cn) != 0){
		mosquitto_log_printf(MOSQ_LOG_NOTICE, "kassa_device_acl: refused '%s': the username must be the certificate's CN", cn);
		return MOSQ_ERR_AUTH;
	}
	if(revoked){
		mosquitto_log_printf(MOSQ_LOG_NOTICE, "kassa_device_acl: refused '%s': its certificate is revoked", cn);
		return MOSQ_ERR_AUTH;
	}
	return MOSQ_ERR_SUCCESS;
}

static int acl_check(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_acl_check *ed = event_data;
	const char *username = mosquitto_client_username(ed->client);
	(void)event;
	(void)userdata;

	if(username == NULL || !valid_device_id(username)){
		if(ed->access == MOSQ_ACL_SUBSCRIBE){
			mosquitto_log_printf(MOSQ_LOG_NOTICE, "kassa_device_acl: refused '%s': not a device identity",
					username ? username : "(no username)");
		}
		return MOSQ_ERR_ACL_DENIED;
	}
	if(revoked_certificate(ed->client)){
		return MOSQ_ERR_ACL_DENIED;
	}
	switch(ed->access){
		case MOSQ_ACL_SUBSCRIBE:
			if(own_down_filter(username, ed->topic)) return MOSQ_ERR_SUCCESS;
			mosquitto_log_printf(MOSQ_LOG_NOTICE, "kassa_device_acl: refused subscription of '%s' to '%s'",
					username, ed->topic);
			return MOSQ_ERR_ACL_DENIED;
		case MOSQ_ACL_UNSUBSCRIBE:
			return MOSQ_ERR_SUCCESS;
		default:
			return MOSQ_ERR_PLUGIN_DEFER; /* publish and delivery: the listener's acl_file */
	}
}

static int reload(int event, void *event_data, void *userdata)
{
	(void)event;
	(void)event_data;
	(void)userdata;
	load_crl();
	return MOSQ_ERR_SUCCESS;
}

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
	for(int i = 0; i < supported_version_count; i++){
		if(supported_versions[i] == 5) return 5;
	}
	return -1;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata, struct mosquitto_opt *options, int option_count)
{
	(void)userdata;
	plugin_id = identifier;
	for(int i = 0; i < option_count; i++){
		if(strcasecmp(options[i].key, "crl_file") == 0){
			mosquitto_free(crl_path);
			crl_path = mosquitto_strdup(options[i].value);
			if(crl_path == NULL) return MOSQ_ERR_NOMEM;
		}else if(strcasecmp(options[i].key, "ca_file") == 0){
			mosquitto_free(ca_path);
			ca_path = mosquitto_strdup(options[i].value);
			if(ca_path == NULL) return MOSQ_ERR_NOMEM;
		}else{
			mosquitto_log_printf(MOSQ_LOG_ERR, "kassa_device_acl: unknown option plugin_opt_%s", options[i].key);
			return MOSQ_ERR_INVAL;
		}
	}
	if(ca_path == NULL || (device_ca = read_certificate(ca_path)) == NULL){
		mosquitto_log_printf(MOSQ_LOG_ERR, "kassa_device_acl: plugin_opt_ca_file must name the device CA certificate (PEM)");
		return MOSQ_ERR_INVAL;
	}
	load_crl();
	if(crl_path != NULL && crl == NULL) return MOSQ_ERR_INVAL; /* a CRL was asked for: start only with it */
	int rc = mosquitto_callback_register(plugin_id, MOSQ_EVT_BASIC_AUTH, basic_auth, NULL, NULL);
	if(rc == MOSQ_ERR_SUCCESS) rc = mosquitto_callback_register(plugin_id, MOSQ_EVT_ACL_CHECK, acl_check, NULL, NULL);
	if(rc == MOSQ_ERR_SUCCESS) rc = mosquitto_callback_register(plugin_id, MOSQ_EVT_RELOAD, reload, NULL, NULL);
	return rc;
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *options, int option_count)
{
	(void)userdata;
	(void)options;
	(void)option_count;
	mosquitto_callback_unregister(plugin_id, MOSQ_EVT_BASIC_AUTH, basic_auth, NULL);
	mosquitto_callback_unregister(plugin_id, MOSQ_EVT_ACL_CHECK, acl_check, NULL);
	mosquitto_callback_unregister(plugin_id, MOSQ_EVT_RELOAD, reload, NULL);
	if(crl) X509_CRL_free(crl);
	if(device_ca) X509_free(device_ca);
	crl = NULL;
	revoked_count = 0;
	device_ca = NULL;
	mosquitto_free(crl_path);
	mosquitto_free(ca_path);
	crl_path = ca_path = NULL;
	return MOSQ_ERR_SUCCESS;
}
