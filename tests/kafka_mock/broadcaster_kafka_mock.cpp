// broadcaster-kafka-mock: a Kafka-protocol test broker built on librdkafka's mock
// cluster. Prints the bootstrap list on the first line of stdout, then runs until
// SIGTERM or SIGINT. Commands on stdin, one per line, each answered with "ok" or
// "error: ...":
//   down ID|all     disconnect a broker (or all) and refuse new connections
//   up ID|all       accept connections again
//   topic NAME N    create topic NAME with N partitions

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <unistd.h>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <sstream>
#include <string>

namespace {

void usage() {
    std::cerr << "usage: broadcaster-kafka-mock [--brokers N]\n"
                 "Starts a mock Kafka cluster of N brokers (default 3) on loopback ports,\n"
                 "prints its bootstrap list, and runs until SIGTERM or SIGINT.\n"
                 "stdin commands: 'down ID|all', 'up ID|all', 'topic NAME PARTITIONS'.\n";
}

// Quiet: the mock logs a warning for every topic a client auto-creates.
void log_nothing(const rd_kafka_t*, int, const char*, const char*) {}

std::string run(rd_kafka_mock_cluster_t* cluster, const std::string& line) {
    std::istringstream in(line);
    std::string command;
    in >> command;
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (command == "down" || command == "up") {
        std::string which;
        in >> which;
        const int id = which == "all" ? -1 : std::atoi(which.c_str());
        if (id == 0) {
            return "error: expected a broker id (1..N) or 'all'";
        }
        err = command == "down" ? rd_kafka_mock_broker_set_down(cluster, id)
                                : rd_kafka_mock_broker_set_up(cluster, id);
    } else if (command == "topic") {
        std::string name;
        int partitions = 0;
        in >> name >> partitions;
        if (name.empty() || partitions <= 0) {
            return "error: expected 'topic NAME PARTITIONS'";
        }
        err = rd_kafka_mock_topic_create(cluster, name.c_str(), partitions, 1);
    } else {
        return "error: unknown command '" + command + "'";
    }
    return err ? std::string("error: ") + rd_kafka_err2str(err) : "ok";
}

}  // namespace

int main(int argc, char** argv) {
    int brokers = 3;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--brokers" && i + 1 < argc) {
            brokers = std::atoi(argv[++i]);
        } else {
            usage();
            return arg == "--help" || arg == "-h" ? 0 : 2;
        }
    }
    if (brokers < 1) {
        usage();
        return 2;
    }

    // Signals end the process at once: the cluster lives in memory only.
    std::signal(SIGTERM, [](int) { _exit(0); });
    std::signal(SIGINT, [](int) { _exit(0); });

    char error[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, log_nothing);
    rd_kafka_t* host = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof error);
    if (!host) {
        std::cerr << "broadcaster-kafka-mock: " << error << "\n";
        return 1;
    }
    rd_kafka_mock_cluster_t* cluster = rd_kafka_mock_cluster_new(host, brokers);
    if (!cluster) {
        std::cerr << "broadcaster-kafka-mock: cannot create the mock cluster\n";
        return 1;
    }
    std::cout << rd_kafka_mock_cluster_bootstraps(cluster) << std::endl;

    std::string line;
    while (std::getline(std::cin, line)) {
        if (!line.empty()) {
            std::cout << run(cluster, line) << std::endl;
        }
    }
    // No more commands: serve until a signal ends the process.
    for (;;) {
        pause();
    }
}
