"""A device's file upload as Azure's samples write it: azure-iot-device 2.14.0 asks the hub for a blob SAS URI
(get_storage_info_for_blob), azure-storage-blob uploads the file to it, and the device notifies the hub
(notify_blob_upload_status).

usage: azure_file_upload.py CONNECTION_STRING CA_FILE HUB_HTTPS_PORT BLOB_NAME FILE
The device SDK dials port 443 for HTTPS, which a test cannot always listen on, so only the host it is handed is
given the test's port; the paths, headers and token stay the SDK's. The CA is trusted through REQUESTS_CA_BUNDLE
for azure-storage-blob. Prints "uploaded BLOB_URL_PATH BYTES" and "notified CORRELATION_ID", exits 0.
"""
import os
import sys
from urllib.parse import urlparse

from azure.iot.device import IoTHubDeviceClient
from azure.iot.device.common import http_transport
from azure.storage.blob import BlobClient

connection_string, ca_file, port, blob_name, path = sys.argv[1:6]
os.environ["REQUESTS_CA_BUNDLE"] = ca_file
original_init = http_transport.HTTPTransport.__init__


def init_with_test_port(self, hostname, *args, **kwargs):
    original_init(self, "{}:{}".format(hostname, port), *args, **kwargs)


http_transport.HTTPTransport.__init__ = init_with_test_port
with open(ca_file) as handle:
    ca = handle.read()
client = IoTHubDeviceClient.create_from_connection_string(connection_string, server_verification_cert=ca)
info = client.get_storage_info_for_blob(blob_name)
url = "https://{}/{}/{}{}".format(info["hostName"], info["containerName"], info["blobName"], info["sasToken"])
with open(path, "rb") as data:
    size = os.path.getsize(path)
    # Above 1 MiB in 1 MiB blocks (Put Block, Put Block List); below, one Put Blob.
    blob = BlobClient.from_blob_url(url, max_single_put_size=1 << 20, max_block_size=1 << 20)
    blob.upload_blob(data, blob_type="BlockBlob", overwrite=True, max_concurrency=1)
print("uploaded", urlparse(url).path, size, flush=True)
client.notify_blob_upload_status(info["correlationId"], True, 200, "uploaded by azure-storage-blob")
print("notified", info["correlationId"], flush=True)
client.shutdown()
