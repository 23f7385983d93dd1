"""Kafka client settings: parsing, secrets kept out of files and messages, librdkafka refusing a bad property
when the client is made (no broker needed)."""

from __future__ import annotations

import pytest

from bastion.settings import Settings, SettingsError, kafka_props

pytest.importorskip("confluent_kafka")


def test_pairs_from_the_environment_keep_commas_inside_values():
    s = Settings.load(env={"BASTION_KAFKA_CONFIG": "security.protocol=SASL_SSL, sasl.mechanisms=SCRAM-SHA-512,"
                                                   "ssl.cipher.suites=ECDHE-RSA-AES128-GCM-SHA256,AES256-SHA\n"
                                                   "sasl.username=bastion",
                           "BASTION_KAFKA_SASL_PASSWORD": "hunter2-secret"})
    assert s.kafka_config == {"security.protocol": "SASL_SSL", "sasl.mechanisms": "SCRAM-SHA-512",
                              "ssl.cipher.suites": "ECDHE-RSA-AES128-GCM-SHA256,AES256-SHA",
                              "sasl.username": "bastion"}
    assert s.kafka_sasl_password == "hunter2-secret"
    assert "hunter2-secret" not in repr(s)
    from bastion.sources.kafka import client_properties

    assert client_properties(s)["sasl.password"] == "hunter2-secret"
    with pytest.raises(SettingsError, match="NAME=VALUE"):
        kafka_props("BASTION_KAFKA_CONFIG", "SASL_SSL")


def test_a_kafka_table_in_the_settings_file(tmp_path):
    f = tmp_path / "bastion.toml"
    f.write_text('[bastion]\nkafka_actions_topic = "kafka://127.0.0.1:9092/actions"\n'
                 '[bastion.kafka]\n"security.protocol" = "SSL"\n"ssl.ca.location" = "/etc/ca.pem"\n'
                 '"socket.keepalive.enable" = true\n"socket.timeout.ms" = 5000\n')
    s = Settings.load(f, env={})
    assert s.kafka_config == {"security.protocol": "SSL", "ssl.ca.location": "/etc/ca.pem",
                              "socket.keepalive.enable": "true", "socket.timeout.ms": "5000"}
    assert s.kafka_actions_topic == "kafka://127.0.0.1:9092/actions"
    # the environment's pairs replace the file's table, as every BASTION_* variable does
    assert Settings.load(f, env={"BASTION_KAFKA_CONFIG": "security.protocol=PLAINTEXT"}).kafka_config == {
        "security.protocol": "PLAINTEXT"}


@pytest.mark.parametrize("text", ['[bastion.kafka]\n"sasl.password" = "pw-in-a-file"\n',
                                  '[bastion.kafka]\n"ssl.key.password" = "pw-in-a-file"\n',
                                  '[bastion]\nkafka_sasl_password = "pw-in-a-file"\n'])
def test_secrets_in_a_settings_file_are_refused(tmp_path, text):
    f = tmp_path / "bastion.toml"
    f.write_text(text)
    with pytest.raises(SettingsError, match="environment") as err:
        Settings.load(f, env={})
    assert "pw-in-a-file" not in str(err.value)


def test_librdkafka_refuses_unknown_properties_and_values_when_the_client_is_made():
    from confluent_kafka import Producer

    from bastion.sources.kafka import KafkaConfigError, KafkaSource, make_client

    with pytest.raises(KafkaConfigError, match='No such configuration property: "no.such.property"'):
        make_client(Producer, "kafka://127.0.0.1:1/t", {}, {"no.such.property": "1"}, "test")
    with pytest.raises(KafkaConfigError, match="security.protocol"):
        make_client(Producer, "kafka://127.0.0.1:1/t", {}, {"security.protocol": "BOGUS"}, "test")
    with pytest.raises(KafkaConfigError, match="set by Bastion"):
        KafkaSource("kafka://127.0.0.1:1/t", config={"enable.auto.commit": "true"})
    with pytest.raises(KafkaConfigError, match="no Kafka servers"):
        make_client(Producer, "kafka:///t", {}, {}, "test")
    # bootstrap.servers may come from the settings when the URL names only the topic
    p, _errors = make_client(Producer, "kafka:///t", {}, {"bootstrap.servers": "127.0.0.1:1"}, "test")
    assert len(p) == 0


def test_secret_values_are_removed_from_messages():
    from bastion.sources.kafka import redact

    props = {"sasl.password": "s3cr3t-value", "sasl.username": "bob"}
    assert redact("auth failed for bob with s3cr3t-value", props) == "auth failed for bob with ***"
