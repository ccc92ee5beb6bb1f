#pragma once

#include "server_process.hpp"

#include <cstdlib>
#include <stdexcept>
#include <string>

namespace broadcaster::test {

// A self-signed certificate for localhost, made with the openssl command line.
struct tls_files {
    scratch_dir dir{"broadcaster-tls"};
    std::string cert = (dir.path() / "cert.pem").string();
    std::string key = (dir.path() / "key.pem").string();
    tls_files() {
        const auto command =
            "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost"
            " -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout " +
            key + " -out " + cert + " > /dev/null 2>&1";
        if (std::system(command.c_str()) != 0) {
            throw std::runtime_error("openssl could not make a certificate");
        }
    }
};

}  // namespace broadcaster::test
