// Test helper (needs dhtkit::security's OpenSSL): certificate authorities and
// per-node certificates made at test time in a temporary directory, so no
// private key is ever committed. Keys are P-256; certificates last a day.
//
//   dhtkit::test::pki pki;                         // a fresh temporary directory
//   auto ca = pki.authority("cluster-ca");         // ca.pem inside it
//   auto a = pki.issue(ca, "a");                   // SAN DNS:a, serverAuth + clientAuth
//   dhtkit::tls_config cfg = a.config;             // a.pem, a.key, cluster-ca.pem
#pragma once

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <system_error>

#include "dhtkit/security/tls.hpp"

namespace dhtkit::test {

class pki {
 public:
  struct authority_files {
    std::string name;
    std::string cert_file, key_file;
  };
  struct node_files {
    std::string name;
    tls_config config;  // certificate, key, and the issuing CA's certificate
  };

  pki() {
    std::random_device rd;
    dir_ = std::filesystem::temp_directory_path() /
           ("dhtkit-pki-" + std::to_string(rd()) + "-" + std::to_string(rd()));
    std::filesystem::create_directories(dir_);
  }
  pki(const pki&) = delete;
  pki& operator=(const pki&) = delete;
  ~pki() {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  const std::filesystem::path& dir() const { return dir_; }

  // A self-signed CA certificate (CA:TRUE, keyCertSign) named `name`.
  authority_files authority(const std::string& name) {
    key_ptr key = make_key();
    cert_ptr cert = make_cert(name, key.get(), nullptr, key.get(), true, "");
    authority_files f{name, path(name + ".pem"), path(name + ".key")};
    write_cert(cert.get(), f.cert_file);
    write_key(key.get(), f.key_file);
    return f;
  }

  // A certificate signed by `ca` for a node: common name `cn`, and `san`
  // (e.g. "DNS:a"; empty: no subject alternative name) as its names.
  // `file` names the files (default: cn).
  node_files issue(const authority_files& ca, const std::string& cn, std::string san = "",
                   std::string file = "") {
    if (san.empty() && !cn.empty()) san = "DNS:" + cn;
    if (file.empty()) file = cn;
    if (san == "none") san.clear();
    key_ptr ca_key = read_key(ca.key_file);
    cert_ptr ca_cert = read_cert(ca.cert_file);
    key_ptr key = make_key();
    cert_ptr cert = make_cert(cn, key.get(), ca_cert.get(), ca_key.get(), false, san);
    node_files f;
    f.name = cn;
    f.config.certificate_chain_file = path(file + ".pem");
    f.config.private_key_file = path(file + ".key");
    f.config.ca_file = ca.cert_file;
    write_cert(cert.get(), f.config.certificate_chain_file);
    write_key(key.get(), f.config.private_key_file);
    return f;
  }

 private:
  struct key_free {
    void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
  };
  struct cert_free {
    void operator()(X509* c) const { X509_free(c); }
  };
  using key_ptr = std::unique_ptr<EVP_PKEY, key_free>;
  using cert_ptr = std::unique_ptr<X509, cert_free>;

  static void check(bool ok, const char* what) {
    if (!ok) throw std::runtime_error(std::string("test pki: ") + what);
  }

  std::string path(const std::string& file) const { return (dir_ / file).string(); }

  static key_ptr make_key() {
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_EC, nullptr);
    check(ctx != nullptr, "EVP_PKEY_CTX_new_id");
    EVP_PKEY* key = nullptr;
    const bool ok = EVP_PKEY_keygen_init(ctx) == 1 &&
                    EVP_PKEY_CTX_set_ec_paramgen_curve_nid(ctx, NID_X9_62_prime256v1) == 1 &&
                    EVP_PKEY_keygen(ctx, &key) == 1;
    EVP_PKEY_CTX_free(ctx);
    check(ok, "key generation");
    return key_ptr(key);
  }

  cert_ptr make_cert(const std::string& cn, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key, bool ca,
                     const std::string& san) {
    cert_ptr cert(X509_new());
    X509* x = cert.get();
    check(x != nullptr, "X509_new");
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), ++serial_);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 24 * 3600);
    X509_set_pubkey(x, key);
    X509_NAME* subject = X509_get_subject_name(x);
    if (!cn.empty())
      X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
    X509_NAME_add_entry_by_txt(subject, "O", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>("dhtkit test"), -1, -1, 0);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : subject);
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, issuer ? issuer : x, x, nullptr, nullptr, 0);
    auto add = [&](int nid, const std::string& value) {
      X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, nid, value.c_str());
      check(ext != nullptr, "X509V3_EXT_conf_nid");
      X509_add_ext(x, ext, -1);
      X509_EXTENSION_free(ext);
    };
    add(NID_subject_key_identifier, "hash");
    if (ca) {
      add(NID_basic_constraints, "critical,CA:TRUE");
      add(NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
      add(NID_basic_constraints, "CA:FALSE");
      add(NID_key_usage, "critical,digitalSignature");
      add(NID_ext_key_usage, "serverAuth,clientAuth");
      if (!san.empty()) add(NID_subject_alt_name, san);
    }
    check(X509_sign(x, issuer_key, EVP_sha256()) > 0, "X509_sign");
    return cert;
  }

  static void write_cert(X509* cert, const std::string& file) {
    FILE* f = std::fopen(file.c_str(), "w");
    check(f != nullptr, "open a certificate file");
    const bool ok = PEM_write_X509(f, cert) == 1;
    std::fclose(f);
    check(ok, "PEM_write_X509");
  }
  static void write_key(EVP_PKEY* key, const std::string& file) {
    FILE* f = std::fopen(file.c_str(), "w");
    check(f != nullptr, "open a key file");
    const bool ok = PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr) == 1;
    std::fclose(f);
    check(ok, "PEM_write_PrivateKey");
  }
  static cert_ptr read_cert(const std::string& file) {
    FILE* f = std::fopen(file.c_str(), "r");
    check(f != nullptr, "open a certificate file");
    X509* c = PEM_read_X509(f, nullptr, nullptr, nullptr);
    std::fclose(f);
    check(c != nullptr, "PEM_read_X509");
    return cert_ptr(c);
  }
  static key_ptr read_key(const std::string& file) {
    FILE* f = std::fopen(file.c_str(), "r");
    check(f != nullptr, "open a key file");
    EVP_PKEY* k = PEM_read_PrivateKey(f, nullptr, nullptr, nullptr);
    std::fclose(f);
    check(k != nullptr, "PEM_read_PrivateKey");
    return key_ptr(k);
  }

  std::filesystem::path dir_;
  long serial_ = 0;
};

}  // namespace dhtkit::test
